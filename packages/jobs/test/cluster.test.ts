/**
 * Hatch on a three-node JetStream cluster (issue 17): with HATCH_STREAM_REPLICAS=3 the streams
 * and the workers' durable consumer have three copies, and a client given every node in NATS_URL
 * carries on when the node it is connected to is killed (-9): earlier jobs are still there and
 * new publishes are stored.
 */
import t from 'tap';
import { headers } from '@nats-io/transport-node';
import { createLogger } from '@hatch/log';
import { natsNames } from '@hatch/contracts';
import { connectBus, ensureStreams } from '@hatch/bus';
import { spawnNatsCluster, waitFor, waitForValue } from '@hatch/testing';
import { ensureConsumer } from '../src/index.js';

const log = createLogger({ service: 'cluster-test', level: 'silent', pretty: false });

t.test('streams and durable consumers get 3 replicas; a client survives the kill -9 of its node', async (t) => {
  const cluster = await spawnNatsCluster(t);
  t.equal(cluster.url.split(',').length, 3, 'NATS_URL lists the three nodes');
  const names = natsNames(`CL${process.pid}`);
  const bus = await connectBus({ url: cluster.url, replicas: 3, name: 'cluster-test', log });
  t.teardown(() => bus.close(1000));
  await ensureStreams(bus.jsm, names, {}, bus.replicas);
  await ensureConsumer(bus, {
    stream: names.streams.jobs,
    durable: names.consumers.smsSender,
    subject: names.subjects.smsJob,
    ackWaitMs: 5000,
    maxDeliver: 3,
    maxAckPending: 16,
  });

  for (const stream of Object.values(names.streams)) {
    // the followers appear in `cluster.replicas` once they have caught up with the leader
    const info = await waitForValue(
      async () => {
        const i = await bus.jsm.streams.info(stream);
        return (i.cluster?.replicas?.length ?? 0) === 2 ? i : undefined;
      },
      { timeoutMs: 20_000, message: `${stream} to have two followers` },
    );
    t.equal(info.config.num_replicas, 3, `${stream}: num_replicas 3`);
    t.ok(info.cluster?.leader, `${stream}: has a leader`);
  }
  const consumer = await bus.jsm.consumers.info(names.streams.jobs, names.consumers.smsSender);
  t.equal(consumer.config.num_replicas, 3, 'the durable consumer: num_replicas 3');

  const publish = (n: number) => {
    const h = headers();
    h.set('Nats-Msg-Id', `job-${n}`);
    return bus.js.publish(names.subjects.smsJob, JSON.stringify({ n }), { headers: h, timeout: 2000 });
  };
  for (let n = 1; n <= 5; n++) await publish(n);

  const port = bus.nc.info?.port;
  const victim = cluster.nodes.find((node) => node.port === port);
  if (!victim) throw new Error(`connected to port ${port}, not one of the cluster's nodes`);
  await victim.kill();
  t.notOk(victim.running, 'the node the client was connected to is killed');

  // Publishes go through again once the client is on another node and the streams whose
  // leader it was have elected a new one.
  await waitFor(
    async () => {
      try {
        await publish(6);
        return true;
      } catch {
        return false;
      }
    },
    { timeoutMs: 30_000, intervalMs: 250, message: 'a publish to succeed after the node was killed' },
  );
  t.not(bus.nc.info?.port, port, 'the client is now connected to another node');
  const jobs = await bus.jsm.streams.info(names.streams.jobs);
  t.equal(jobs.state.messages, 6, 'the five jobs from before the kill and the one after, none lost or doubled');

  await victim.start();
  await cluster.waitReady();
});

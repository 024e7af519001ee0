/** The shared job consumer's shutdown: drains jobs in flight, within a bound. Real NATS JetStream. */
import t from 'tap';
import Type from 'typebox';
import { createLogger } from '@hatch/log';
import { testNats, waitFor, type Teardownable } from '@hatch/testing';
import { connectBus, createMetricsRegistry, ensureStreams, startJobConsumer, type Bus, type JobOutcome } from '../src/index.js';

const log = createLogger({ service: 'job-consumer-test', level: 'silent', pretty: false });
const Job = Type.Object({ n: Type.Integer() });

async function setup(t: Teardownable) {
  const nats = testNats(t);
  const bus = await connectBus({ url: nats.url, name: 'job-consumer-test', log });
  t.teardown(() => bus.close(1000));
  await ensureStreams(bus.jsm, nats.names);
  const start = (handle: (job: { n: number }, deliveryCount: number) => Promise<JobOutcome>, drainTimeoutMs?: number) =>
    startJobConsumer({
      bus,
      log,
      registry: createMetricsRegistry('test'),
      kind: 'sms',
      stream: nats.names.streams.jobs,
      durable: nats.names.consumers.smsSender,
      subject: nats.names.subjects.smsJob,
      dlqSubject: nats.names.subjects.dlqFor('sms'),
      schema: Job,
      concurrency: 2,
      ackWaitMs: 1000,
      maxDeliver: 5,
      drainTimeoutMs,
      handle: (job, ctx) => handle(job, ctx.deliveryCount),
      onExhausted: async () => undefined,
    });
  const publish = (n: number) => bus.js.publish(nats.names.subjects.smsJob, JSON.stringify({ n }));
  return { bus, start, publish };
}

t.test('stop() waits for a job in flight to finish, and it is acked (not redelivered)', async (t) => {
  const { start, publish } = await setup(t);
  const seen: number[] = [];
  let finish: (() => void) | undefined;
  const c1 = await start(async (_job, deliveryCount) => {
    seen.push(deliveryCount);
    await new Promise<void>((r) => (finish = r));
    return { kind: 'ack' };
  });
  await publish(1);
  await waitFor(() => c1.inFlight() === 1, { message: 'the job is being handled' });
  let stopped = false;
  const stopping = c1.stop().then(() => (stopped = true));
  await new Promise((r) => setImmediate(r));
  t.notOk(stopped, 'stop() waits while the job runs');
  finish?.();
  await stopping;
  // A second consumer on the same durable would get the job again if it had not been acked.
  const c2 = await start(async (_job, deliveryCount) => {
    seen.push(deliveryCount);
    return { kind: 'ack' };
  });
  await publish(2);
  await waitFor(() => seen.length >= 2, { message: 'the next job' });
  await c2.stop();
  t.same(seen, [1, 1], 'the first job was acked: only the next one came');
});

t.test('stop() gives up on a job that outlives the drain bound: it returns, and the job is redelivered', async (t) => {
  const { start, publish } = await setup(t);
  const c1 = await start(() => new Promise<JobOutcome>(() => undefined), 300); // never settles
  await publish(1);
  await waitFor(() => c1.inFlight() === 1, { message: 'the job is being handled' });
  const began = Date.now();
  await c1.stop();
  const took = Date.now() - began;
  t.ok(took >= 250 && took < 5000, `stop() returned at the bound (${took} ms)`);
  // No longer kept alive by the abandoned handler's heartbeat: JetStream redelivers it after AckWait.
  const redelivered: number[] = [];
  const c2 = await start(async (_job, deliveryCount) => {
    redelivered.push(deliveryCount);
    return { kind: 'ack' };
  });
  t.teardown(() => c2.stop());
  await waitFor(() => redelivered.length >= 1, { timeoutMs: 15_000, message: 'the abandoned job redelivered' });
  t.same(redelivered, [2], 'its second delivery');
});

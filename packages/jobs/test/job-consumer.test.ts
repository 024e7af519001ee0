/**
 * The shared job consumer: its shutdown drains jobs in flight, within a bound; a job exhausted by
 * errors its handler throws is dead-lettered (issue 14). Real NATS JetStream.
 */
import { Writable } from 'node:stream';
import t from 'tap';
import Type from 'typebox';
import { createLogger } from '@hatch/log';
import { JOB_HEADERS } from '@hatch/contracts';
import { testNats, waitFor, waitForValue, type Teardownable } from '@hatch/testing';
import { connectBus, ensureStreams } from '@hatch/bus';
import { createMetricsRegistry } from '@hatch/service';
import { backoffFor, startJobConsumer, type JobOutcome } from '../src/index.js';

const log = createLogger({ service: 'job-consumer-test', level: 'silent', pretty: false });
const Job = Type.Object({ n: Type.Integer() });

async function setup(t: Teardownable) {
  const nats = testNats(t);
  const bus = await connectBus({ url: nats.url, name: 'job-consumer-test', log });
  t.teardown(() => bus.close(1000));
  await ensureStreams(bus.jsm, nats.names);
  const start = (
    handle: (job: { n: number }, deliveryCount: number) => Promise<JobOutcome>,
    drainTimeoutMs?: number,
    more: { maxDeliver?: number; onExhausted?: (job: { n: number }, reason: string) => Promise<void> } = {},
  ) =>
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
      maxDeliver: more.maxDeliver ?? 5,
      drainTimeoutMs,
      handle: (job, ctx) => handle(job, ctx.deliveryCount),
      onExhausted: more.onExhausted ?? (async () => undefined),
    });
  const publish = (n: number, msgID?: string) => bus.js.publish(nats.names.subjects.smsJob, JSON.stringify({ n }), msgID ? { msgID } : {});
  return { bus, nats, start, publish };
}

t.test("backoffFor: the first delivery's retry waits baseMs, each later one twice the last, never past maxMs", async (t) => {
  const backoff = backoffFor(2000, 300_000);
  t.same([1, 2, 3, 4, 8, 9, 50].map(backoff), [2000, 4000, 8000, 16_000, 256_000, 300_000, 300_000]);
});

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

t.test(
  'a job whose handler keeps throwing is dead-lettered on its last delivery (reason, original headers), recorded as exhausted, and gone from the work queue',
  async (t) => {
    const { bus, nats, start, publish } = await setup(t);
    const deliveries: number[] = [];
    const exhausted: string[] = [];
    const consumer = await start(
      async (_job, deliveryCount) => {
        deliveries.push(deliveryCount);
        throw new Error('relation "messages" does not exist');
      },
      undefined,
      { maxDeliver: 2, onExhausted: async (_job, reason) => void exhausted.push(reason) },
    );
    t.teardown(() => consumer.stop());
    await publish(7, 'job-7');

    // Left to the server's max_deliver, the job would stay in the work queue for good, undeliverable.
    const dead = await waitForValue(
      async () => {
        const info = await bus.jsm.streams.info(nats.names.streams.dlq);
        return info.state.messages > 0
          ? ((await bus.jsm.streams.getMessage(nats.names.streams.dlq, { seq: info.state.first_seq })) ?? undefined)
          : undefined;
      },
      { timeoutMs: 20_000, message: 'the job in the dead-letter stream' },
    );
    t.same(dead.json(), { n: 7 }, 'the job itself');
    t.equal(dead.header.get(JOB_HEADERS.deadReason), 'MAX_DELIVERIES');
    t.match(dead.header.get(JOB_HEADERS.deadDetail), /handler error: relation "messages" does not exist/);
    t.equal(dead.header.get(JOB_HEADERS.deliveries), '2');
    t.equal(dead.header.get(JOB_HEADERS.originalMsgId), 'job-7');
    t.same(deliveries, [1, 2], 'delivered exactly the allowed number of times');
    t.same(exhausted, ['handler error: relation "messages" does not exist'], 'the failure was recorded once');
    await waitFor(async () => (await bus.jsm.streams.info(nats.names.streams.jobs)).state.messages === 0, {
      timeoutMs: 5000,
      message: 'the work queue empty',
    });
  },
);

t.test(
  'its durable consumer deleted under it: the worker notices, creates it again after a backoff wait, and handles the next job',
  async (t) => {
    const lines: Array<{ msg?: string; retryInMs?: number }> = [];
    const captured = createLogger({
      service: 'job-consumer-test',
      level: 'warn',
      destination: new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(JSON.parse(chunk.toString()) as { msg?: string; retryInMs?: number });
          done();
        },
      }),
    });
    const { bus, nats, publish } = await setup(t);
    const handled: number[] = [];
    const c = await startJobConsumer({
      bus,
      log: captured,
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
      handle: async (job) => {
        handled.push(job.n);
        return { kind: 'ack' };
      },
      onExhausted: async () => undefined,
    });
    t.teardown(() => c.stop());
    await publish(1);
    await waitFor(() => handled.includes(1), { message: 'the first job handled' });
    await bus.jsm.consumers.delete(nats.names.streams.jobs, nats.names.consumers.smsSender);
    await waitFor(() => lines.some((l) => l.msg === 'consume loop interrupted; restarting'), {
      timeoutMs: 20_000,
      message: 'the loss noticed',
    });
    await publish(2);
    await waitFor(() => handled.includes(2), {
      timeoutMs: 20_000,
      message: 'the job after the loss handled: the consumer was created again',
    });
    const info = await bus.jsm.consumers.info(nats.names.streams.jobs, nats.names.consumers.smsSender);
    t.equal(info.config.durable_name, nats.names.consumers.smsSender, 'the durable consumer exists again');
    const waits = lines.filter((l) => l.msg === 'consume loop interrupted; restarting').map((l) => l.retryInMs ?? 0);
    t.ok(waits.length >= 1 && waits.every((w) => w > 0), `each interruption waits before the next attempt (${waits.join(', ')} ms)`);
  },
);

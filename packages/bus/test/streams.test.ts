/**
 * Issue 14: jobs that can never be delivered have a bound: the work queue and the dead-letter
 * stream are limited (a job exhausted by errors its handler throws leaves the work queue for
 * the dead-letter stream: job-consumer.test.ts). Real NATS JetStream.
 */
import t from 'tap';
import { DiscardPolicy, JetStreamApiCodes, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { createLogger } from '@hatch/log';
import { testNats } from '@hatch/testing';
import { connectBus, ensureStreams, isApiError, isNotFound } from '../src/index.js';

const log = createLogger({ service: 'dead-letters-test', level: 'silent', pretty: false });
const DAY_MS = 24 * 3600 * 1000;

t.test(
  'the jobs work queue and the dead-letter stream are bounded; streams made by an older version are brought to these limits',
  async (t) => {
    const nats = testNats(t);
    const bus = await connectBus({ url: nats.url, name: 'dead-letters-test', log });
    t.teardown(() => bus.close(1000));
    // as an earlier Hatch created them: no byte or age bound on the work queue
    await bus.jsm.streams.add({
      name: nats.names.streams.jobs,
      subjects: [nats.names.subjects.jobs],
      retention: RetentionPolicy.Workqueue,
      discard: DiscardPolicy.New,
      max_msgs: 1_000_000,
      storage: StorageType.File,
    });
    await bus.jsm.streams.add({
      name: nats.names.streams.dlq,
      subjects: [nats.names.subjects.dlq],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      storage: StorageType.File,
    });
    await ensureStreams(bus.jsm, nats.names);

    const jobs = (await bus.jsm.streams.info(nats.names.streams.jobs)).config;
    t.match(
      jobs,
      {
        retention: RetentionPolicy.Workqueue,
        discard: DiscardPolicy.New,
        max_msgs: 1_000_000,
        max_bytes: 256 * 1024 ** 2,
        max_age: nanos(7 * DAY_MS),
      },
      'work queue: bounded in count, bytes and age; full means refused, not dropped',
    );
    const dlq = (await bus.jsm.streams.info(nats.names.streams.dlq)).config;
    t.match(
      dlq,
      {
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.Old,
        max_msgs: 1_000_000,
        max_bytes: 128 * 1024 ** 2,
        max_age: nanos(30 * DAY_MS),
      },
      'dead letters: bounded in count, bytes and age; the oldest go first',
    );
  },
);

t.test(
  'past its bound the dead-letter stream drops its oldest letters and still takes new ones; the full work queue refuses a job',
  async (t) => {
    const nats = testNats(t);
    const bus = await connectBus({ url: nats.url, name: 'dead-letters-test', log });
    t.teardown(() => bus.close(1000));
    await ensureStreams(bus.jsm, nats.names, { dlqMaxMsgs: 3, jobsMaxMsgs: 2 });
    for (let n = 1; n <= 5; n++) await bus.js.publish(nats.names.subjects.dlqFor('sms'), JSON.stringify({ n }));
    const state = (await bus.jsm.streams.info(nats.names.streams.dlq)).state;
    t.match(state, { messages: 3, first_seq: 3, last_seq: 5 }, 'the three newest dead letters kept');

    await bus.js.publish(nats.names.subjects.smsJob, JSON.stringify({ n: 1 }));
    await bus.js.publish(nats.names.subjects.smsJob, JSON.stringify({ n: 2 }));
    await t.rejects(
      bus.js.publish(nats.names.subjects.smsJob, JSON.stringify({ n: 3 })),
      /maximum messages exceeded/i,
      'a job past the bound is refused to its publisher',
    );
    t.equal((await bus.jsm.streams.info(nats.names.streams.jobs)).state.messages, 2, 'and no waiting job was dropped for it');
  },
);

t.test(
  'ensureStreams: replicas starting together all succeed; one that finds the stream made with another configuration is not stopped by it',
  async (t) => {
    const nats = testNats(t);
    const bus = await connectBus({ url: nats.url, name: 'streams-race-test', log });
    t.teardown(() => bus.close(1000));
    await Promise.all([ensureStreams(bus.jsm, nats.names), ensureStreams(bus.jsm, nats.names), ensureStreams(bus.jsm, nats.names)]);
    t.equal((await bus.jsm.streams.info(nats.names.streams.jobs)).config.max_msgs, 1_000_000);

    // the race's other side, made deterministic: the stream appears (made by an older version,
    // another configuration) between this replica's info and its add
    const missing = await bus.jsm.streams.info(`${nats.names.streams.jobs}_MISSING`).then(
      () => new Error('expected the server to answer not found'),
      (e: unknown) => e as Error,
    );
    const streams = Object.create(bus.jsm.streams, { info: { value: () => Promise.reject(missing) } }) as typeof bus.jsm.streams;
    await bus.jsm.streams.update(nats.names.streams.jobs, { max_msgs: 5 });
    await t.resolves(
      ensureStreams({ streams } as typeof bus.jsm, nats.names),
      'the server refusing the add as "already in use" is the race, not a failure',
    );
    await t.rejects(
      ensureStreams({ streams: Object.create(streams, { add: { value: () => Promise.reject(missing) } }) } as typeof bus.jsm, nats.names),
      'any other error of the add still fails the start',
    );
  },
);

t.test("isNotFound and isApiError go by the server's error code, not its message", async (t) => {
  const nats = testNats(t);
  const bus = await connectBus({ url: nats.url, name: 'streams-errors-test', log });
  t.teardown(() => bus.close(1000));
  const missingStream = await bus.jsm.streams.info(`${nats.names.streams.jobs}_MISSING`).catch((e: unknown) => e);
  t.ok(isNotFound(missingStream), 'a missing stream');
  t.ok(isApiError(missingStream, JetStreamApiCodes.StreamNotFound));
  await ensureStreams(bus.jsm, nats.names);
  const missingConsumer = await bus.jsm.consumers.info(nats.names.streams.jobs, 'no-such-consumer').catch((e: unknown) => e);
  t.ok(isNotFound(missingConsumer), 'a missing consumer');
  t.notOk(isNotFound(new Error('stream not found')), 'an error that only says so is not one');
  t.notOk(isApiError(missingConsumer, JetStreamApiCodes.StreamNotFound), 'a different code');
});

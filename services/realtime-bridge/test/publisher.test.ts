/**
 * publisher.ts: journal rows published pipelined and chained (docs/realtime.md#chained-publishing),
 * on real PostgreSQL (the rows) and a real JetStream events stream.
 */
import t from 'tap';
import { createTestDb, testNats, type Teardownable } from '@hatch/testing';
import { findJournalAfter, type JournalRow } from '@hatch/db';
import { connectBus, ensureStreams } from '@hatch/bus';
import { createMetricsRegistry } from '@hatch/service';
import { createBridgeMetrics } from '../src/metrics.js';
import { createChainedPublisher, isChainBroken, PUBLISH_WINDOW, type PublisherOptions } from '../src/publisher.js';
import { insertChats, log, readStream, seedConversation } from './harness.js';

async function setup(t: Teardownable, rows: number, opts: PublisherOptions = {}) {
  const db = await createTestDb(t);
  const nats = testNats(t);
  const bus = await connectBus({ url: nats.url, name: 'publisher-test', log });
  t.teardown(() => bus.close(1000));
  await ensureStreams(bus.jsm, nats.names);
  const conv = await seedConversation(db);
  await insertChats(db, conv, rows);
  const journal = await findJournalAfter(db.db, '0', rows);
  const publisher = createChainedPublisher(
    { bus, log, metrics: createBridgeMetrics(createMetricsRegistry('realtime-bridge')) },
    nats.names,
    opts,
  );
  const settled: number[] = [];
  const pass = { keepGoing: () => true, onSettled: (row: JournalRow) => void settled.push(Number(row.id)) };
  const streamIds = async () => (await readStream(bus, nats.names)).map((e) => Number(e.id));
  return { bus, nats, journal, publisher, settled, pass, streamIds };
}

t.test(
  'more messages than the window: every row stored once, in journal order, each settled in order, each naming its predecessor',
  async (t) => {
    // two rows per message: more messages than PUBLISH_WINDOW in flight
    const n = PUBLISH_WINDOW * 4 + 10;
    const s = await setup(t, n, { maxEvents: 2 });
    t.equal(await s.publisher.publish(0n, s.journal, s.pass), n, 'every row acked');
    const ids = s.journal.map((r) => Number(r.id));
    t.same(s.settled, ids, 'settled in order');
    t.same(await s.streamIds(), ids, 'stored in order');
    t.same(
      (await readStream(s.bus, s.nats.names)).map((e) => e.prev),
      ['0', ...ids.slice(0, -1).map(String)],
      'each names its predecessor as prev (the first, the position it was read from)',
    );
    t.equal((await s.bus.jsm.streams.info(s.nats.names.streams.events)).state.messages, n / 2, 'one message per two rows');
    // after a failover the same rows come again: the stream's last message already holds them,
    // so they are settled without a publish, and nothing is stored twice
    s.publisher.forgetTip();
    s.settled.length = 0;
    t.equal(await s.publisher.publish(0n, s.journal, s.pass), 0, 'nothing published again');
    t.same(s.settled, ids);
    t.same(await s.streamIds(), ids, 'still each once');
  },
);

t.test(
  'another publisher gets in between: the chained pass fails as chain-broken, nothing is stored past the intruder; unchained again, it goes on',
  async (t) => {
    const s = await setup(t, 6);
    const [first, second] = [s.journal.slice(0, 3), s.journal.slice(3)];
    await s.publisher.publish(0n, first, s.pass);
    // an intruder with a msgID of its own (a second bridge's heartbeat during a takeover)
    await s.bus.js.publish(s.nats.names.subjects.eventFor('heartbeat'), new TextEncoder().encode('{}'), { msgID: 'intruder' });
    const err = await s.publisher.publish(BigInt(first[2]!.id), second, s.pass).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(isChainBroken(err), `chain broken (${(err as Error | undefined)?.message})`);
    t.same(s.settled, [1, 2, 3], 'nothing after the intruder settled');
    t.same(await s.streamIds(), [1, 2, 3], 'nor stored');
    t.equal(await s.publisher.publish(BigInt(first[2]!.id), second, s.pass), 3, 'the next pass starts unchained and relays the rest');
    t.same(await s.streamIds(), [1, 2, 3, 4, 5, 6]);
  },
);

t.test('keepGoing() false: no row is issued', async (t) => {
  const s = await setup(t, 3);
  t.equal(await s.publisher.publish(0n, s.journal, { ...s.pass, keepGoing: () => false }), 0);
  t.same(await s.streamIds(), []);
});

/** Every message in the events stream, raw: subject, size and msgID, in stream order. */
async function storedMessages(s: Awaited<ReturnType<typeof setup>>) {
  const stream = s.nats.names.streams.events;
  const last = (await s.bus.jsm.streams.info(stream)).state.last_seq;
  const out: Array<{ subject: string; bytes: number; msgID: string | undefined }> = [];
  for (let seq = 1; seq <= last; seq++) {
    const m = await s.bus.jsm.streams.getMessage(stream, { seq });
    if (m) out.push({ subject: m.subject, bytes: m.data.length, msgID: m.header?.get('Nats-Msg-Id') });
  }
  return out;
}

t.test('a batch is one message: N rows in, N events out in order, each naming its predecessor', async (t) => {
  const s = await setup(t, 40);
  t.equal(await s.publisher.publish(0n, s.journal, s.pass), 40);
  const msgs = await storedMessages(s);
  t.equal(msgs.length, 1, 'one message');
  t.equal(msgs[0]?.subject, s.nats.names.subjects.eventBatch, 'on the batch subject');
  t.equal(msgs[0]?.msgID, s.journal.at(-1)?.id, "its msgID is its last row's journal id");
  const events = await readStream(s.bus, s.nats.names);
  t.same(
    events.map((e) => Number(e.id)),
    s.journal.map((r) => Number(r.id)),
  );
  t.same(
    events.map((e) => e.prev),
    ['0', ...s.journal.slice(0, -1).map((r) => r.id)],
  );
});

t.test('batches are bounded in bytes; a row larger than the bound alone still goes, alone', async (t) => {
  const s = await setup(t, 60);
  const maxBytes = 1000;
  const bounded = createChainedPublisher(
    { bus: s.bus, log, metrics: createBridgeMetrics(createMetricsRegistry('realtime-bridge')) },
    s.nats.names,
    { maxBytes },
  );
  t.equal(await bounded.publish(0n, s.journal.slice(0, 30), s.pass), 30);
  const msgs = await storedMessages(s);
  t.ok(msgs.length > 3, `split by bytes into ${msgs.length} messages`);
  t.ok(
    msgs.every((m) => m.bytes <= maxBytes),
    `each at most ${maxBytes} bytes (${msgs.map((m) => m.bytes).join(', ')})`,
  );
  t.ok(
    msgs.slice(0, -1).every((m) => m.bytes > maxBytes - 300),
    'each full but the last (an event is under 300 bytes)',
  );
  const tiny = createChainedPublisher(
    { bus: s.bus, log, metrics: createBridgeMetrics(createMetricsRegistry('realtime-bridge')) },
    s.nats.names,
    { maxBytes: 50 },
  );
  t.equal(await tiny.publish(BigInt(s.journal[29]!.id), s.journal.slice(30), s.pass), 30, 'rows larger than the bound are relayed');
  t.equal((await storedMessages(s)).length, msgs.length + 30, 'one message each');
  t.same(
    await s.streamIds(),
    s.journal.map((r) => Number(r.id)),
    'every row once, in order',
  );
});

t.test(
  'takeover mid-batch: the stream already holds a batch ending inside this bridge’s first batch; exactly those rows are passed over, the rest stored once',
  async (t) => {
    const s = await setup(t, 300);
    // The old bridge: stored rows 1..150 as one batch, then died before saving its position.
    const old = createChainedPublisher(
      { bus: s.bus, log, metrics: createBridgeMetrics(createMetricsRegistry('realtime-bridge')) },
      s.nats.names,
      { maxEvents: 150 },
    );
    t.equal(await old.publish(0n, s.journal.slice(0, 150), s.pass), 150);
    s.settled.length = 0;
    // The new one re-reads from the saved position (0) with other bounds: its first batch (1..100)
    // has another msgID than the stored one (1..150), so JetStream's duplicate window cannot help.
    const fresh = createChainedPublisher(
      { bus: s.bus, log, metrics: createBridgeMetrics(createMetricsRegistry('realtime-bridge')) },
      s.nats.names,
      { maxEvents: 100 },
    );
    t.equal(await fresh.publish(0n, s.journal, s.pass), 150, 'only rows 151..300 published');
    t.same(
      s.settled,
      s.journal.map((r) => Number(r.id)),
      'every row settled, in order (1..150 passed over)',
    );
    t.same(
      await s.streamIds(),
      s.journal.map((r) => Number(r.id)),
      'each row once, in order',
    );
    const events = await readStream(s.bus, s.nats.names);
    t.equal(events[150]?.prev, '150', 'the first new event names the last one the stream held');
    t.same(
      (await storedMessages(s)).map((m) => m.msgID),
      ['150', '250', '300'],
      'the old batch, then 151..250 and 251..300',
    );
  },
);

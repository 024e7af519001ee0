/**
 * The bridge publishes one message per journal batch (BusChangeBatch on `<p>.events.batch`,
 * docs/realtime.md#one-message-per-journal-batch); a gateway unpacks it and delivers each event
 * exactly as if it had come alone: in journal order, once per client, a batch after a gap
 * repaired from the journal, and single events (a bridge older than batches, during a rolling
 * upgrade) still taken, mixed with batches.
 *
 * Real PostgreSQL (the journal), real NATS (the events stream), a gateway listening on a real
 * port, SSE clients over HTTP. The test plays the bridge: the same envelopes it builds
 * (journalRowToEvent, `prev`), batched or single, some left out.
 */
import t from 'tap';
import { connectBus } from '@hatch/bus';
import { BusChangeBatch, BusChangeEvent, encode } from '@hatch/contracts';
import { findJournalAfter, journalRowToEvent, type JournalRow } from '@hatch/db';
import { createTestDb, testNats, type Teardownable, type TestDb, type TestNats } from '@hatch/testing';
import { AUTH, conversation, ids, journal, log, metricOf, replica, updates, write } from './realtime-harness.js';
import { openSse } from './sse-client.js';

async function setup(t: Teardownable, db: TestDb, nats: TestNats) {
  const gw = await replica(t, db, nats.url, nats.prefix);
  const bus = await connectBus({ url: nats.url, name: 'batches-test-bridge', log });
  t.teardown(() => bus.close(1000));
  const rows = async () => findJournalAfter(db.db, '0', 1000);
  /** rows[from..to] as one batch message, its first naming `prev` */
  const batch = (rs: JournalRow[], from: number, to: number, prev: string) => {
    const b: BusChangeBatch = {
      prev,
      events: rs.slice(from, to + 1).map((r) => {
        const { id, event } = journalRowToEvent(r);
        return { id, event };
      }),
    };
    return bus.js.publish(nats.names.subjects.eventBatch, encode(BusChangeBatch, b), { msgID: rs[to]?.id });
  };
  /** rows[i] as a single event (an older bridge) */
  const single = (rs: JournalRow[], i: number, prev: string) => {
    const env: BusChangeEvent = { ...journalRowToEvent(rs[i] as JournalRow), prev };
    return bus.js.publish(nats.names.subjects.eventFor('messages'), encode(BusChangeEvent, env), { msgID: env.id });
  };
  return { gw, bus, rows, batch, single };
}

t.test('a batch published as one message reaches every client as its N events, in order, once', async (t) => {
  const db = await createTestDb(t);
  const nats = testNats(t);
  const s = await setup(t, db, nats);
  const [room, other] = [await conversation(db), await conversation(db)];
  await write(db, room, 10, 10);
  await write(db, other, 5, 5);
  await write(db, room, 15, 15);
  const rs = await s.rows();
  t.equal(rs.length, 30);
  const all = await openSse(`${s.gw.url}/api/events`, AUTH);
  const filtered = await openSse(`${s.gw.url}/api/events?conversation_id=${other}`, AUTH);
  await s.batch(rs, 0, 29, '0');
  await all.waitFor((c) => updates(c).length >= 30, 15_000, 'all 30 events delivered');
  t.same(ids(all), await journal(db), 'every event of the batch, once, in journal order');
  await filtered.waitFor((c) => updates(c).length >= 5, 15_000, 'the filtered client got its conversation');
  t.same(
    ids(filtered),
    rs.slice(10, 15).map((r) => Number(r.id)),
    'the filtered client: exactly its conversation',
  );
  t.notOk((await metricOf(s.gw.app, 'hatch_sse_catchups_total')) > 0, 'no catch-up: nothing was missing');
  all.close();
  filtered.close();
});

t.test(
  'a batch whose first event’s predecessor was never received: the missing events come from the journal, before the batch, each once',
  async (t) => {
    const db = await createTestDb(t);
    const nats = testNats(t);
    const s = await setup(t, db, nats);
    const conv = await conversation(db);
    await write(db, conv, 40, 10);
    const rs = await s.rows();
    const all = await openSse(`${s.gw.url}/api/events`, AUTH);
    await s.batch(rs, 0, 9, '0');
    await all.waitFor((c) => updates(c).length >= 10, 15_000, 'the first batch');
    // rows 10..19 (a whole batch) never reach the stream; the next batch names row 19 as its first's predecessor
    await s.batch(rs, 20, 29, rs[19]!.id);
    await s.batch(rs, 30, 39, rs[29]!.id);
    await all.waitFor((c) => updates(c).length >= 40, 15_000, 'every event');
    t.same(ids(all), await journal(db), 'every journal event once, in order');
    t.equal(await metricOf(s.gw.app, 'hatch_sse_catchups_total'), 1, 'one catch-up');
    t.ok((await metricOf(s.gw.app, 'hatch_sse_caught_up_events_total')) >= 10, 'at least rows 10..19 came from the journal');
    t.notOk(all.ended(), 'on the same stream');
    all.close();
  },
);

t.test(
  'single events (an older bridge) and batches mixed, a batch re-relaying events already delivered: every event once, in order',
  async (t) => {
    const db = await createTestDb(t);
    const nats = testNats(t);
    const s = await setup(t, db, nats);
    const conv = await conversation(db);
    await write(db, conv, 30, 10);
    const rs = await s.rows();
    const all = await openSse(`${s.gw.url}/api/events`, AUTH);
    // the old bridge: rows 0..4 one message each
    for (let i = 0; i <= 4; i++) await s.single(rs, i, i === 0 ? '0' : rs[i - 1]!.id);
    // the new bridge takes over from an older saved position: its first batch re-relays rows 2..4
    await s.batch(rs, 2, 14, rs[1]!.id);
    // a single again (the old one, briefly back during a rolling upgrade), then batches
    await s.single(rs, 15, rs[14]!.id);
    await s.batch(rs, 16, 16, rs[15]!.id);
    await s.batch(rs, 17, 29, rs[16]!.id);
    await all.waitFor((c) => updates(c).length >= 30, 15_000, 'every event');
    t.same(ids(all), await journal(db), 'every journal event once, in order');
    t.notOk((await metricOf(s.gw.app, 'hatch_sse_catchups_total')) > 0, 'nothing missing: no catch-up');
    all.close();
  },
);

/**
 * The events stream is the transport, the journal the truth (hub.ts header, docs/realtime.md#gaps-on-the-stream):
 * a gateway whose stream lacks relayed events, or holds them out of order (the 30-minute soak saw
 * every gateway miss a run of events across a NATS stall), fills them from the journal and still
 * delivers every event once, in journal order, on the open stream.
 *
 * Real PostgreSQL (the journal), real NATS (the events stream), a gateway listening on a real
 * port, SSE clients over HTTP. The test plays the bridge and publishes the stream it wants: the
 * same envelopes the bridge builds (journalRowToEvent + `prev`), with some left out or reordered.
 */
import t from 'tap';
import { connectBus } from '@hatch/bus';
import { BusChangeEvent, BusHeartbeat, encode } from '@hatch/contracts';
import { findJournalAfter, journalRowToEvent, type JournalRow } from '@hatch/db';
import { createTestDb, testNats, waitFor } from '@hatch/testing';
import { AUTH, conversation, ids, journal, log, metricOf, replica, updates, write } from './realtime-harness.js';
import { openSse } from './sse-client.js';

t.test(
  'events missing from the stream (a predecessor never received, a heartbeat past them, a reordered pair) reach every client from the journal, once, in order, without a reconnect',
  async (t) => {
    const db = await createTestDb(t);
    const nats = testNats(t);
    const gw = await replica(t, db, nats.url, nats.prefix);
    const bus = await connectBus({ url: nats.url, name: 'gaps-test-bridge', log });
    t.teardown(() => bus.close(1000));

    const [room, other] = [await conversation(db), await conversation(db)];
    await write(db, room, 10, 5);
    await write(db, other, 5, 5);
    await write(db, room, 10, 5);
    const rows = await findJournalAfter(db.db, '0', 1000);
    t.equal(rows.length, 25);
    const at = (i: number) => rows[i] as JournalRow;
    const publish = (i: number, prev: string) => {
      const env: BusChangeEvent = { ...journalRowToEvent(at(i)), prev };
      return bus.js.publish(nats.names.subjects.eventFor(at(i).table_name as 'messages'), encode(BusChangeEvent, env), { msgID: env.id });
    };
    const chain = async (from: number, to: number) => {
      for (let i = from; i <= to; i++) await publish(i, i === 0 ? '0' : at(i - 1).id);
    };

    const all = await openSse(`${gw.url}/api/events`, AUTH);
    const filtered = await openSse(`${gw.url}/api/events?conversation_id=${other}`, AUTH);
    t.equal(all.status, 200);

    // 1. Rows 8..16 (among them every row of `other`) never reach the stream; row 17 names row 16
    // as its predecessor.
    await chain(0, 7);
    await chain(17, 19);
    const upTo = async (i: number) => all.waitFor((c) => ids(c).includes(Number(at(i).id)), 15_000, `row ${i} delivered`);
    await upTo(19);
    t.same(
      ids(all),
      rows.slice(0, 20).map((r) => Number(r.id)),
      'a skipped predecessor: rows 8..16 read from the journal, delivered before row 17, each once',
    );
    await filtered.waitFor((c) => updates(c).length === 5, 15_000, 'the filtered client got its conversation');
    t.same(
      ids(filtered),
      rows.slice(10, 15).map((r) => Number(r.id)),
      'the filtered client: exactly its conversation, from the journal',
    );

    // 2. Rows 20..21 never reach the stream; the bridge's heartbeat says it relayed up to row 21.
    const hb: BusHeartbeat = { type: 'heartbeat', position: at(21).id, at: new Date().toISOString() };
    await bus.js.publish(nats.names.subjects.eventFor('heartbeat'), encode(BusHeartbeat, hb), { msgID: `hb-${at(21).id}` });
    await upTo(21);

    // 3. Row 23 lands before row 22 (it names 22 as its predecessor); 22 comes after, then 24.
    await publish(23, at(22).id);
    await publish(22, at(21).id);
    await publish(24, at(23).id);
    await upTo(24);

    t.same(ids(all), await journal(db), 'every journal event once, in order');
    t.notOk(all.ended(), 'on the same stream: no reconnect needed');
    t.notOk(filtered.ended());
    t.ok((await metricOf(gw.app, 'hatch_sse_catchups_total')) >= 1, 'catch-ups counted');
    // at least those never on the stream; those arriving during a catch-up are read with it
    t.ok((await metricOf(gw.app, 'hatch_sse_caught_up_events_total')) >= 9 + 2 + 2, 'rows 8..16, 20..21 and 22..23 came from the journal');
    all.close();
    filtered.close();
  },
);

t.test(
  'a heartbeat that arrives while a catch-up waits on the journal extends that catch-up: the missing events are delivered once',
  async (t) => {
    const db = await createTestDb(t);
    const nats = testNats(t);
    const gw = await replica(t, db, nats.url, nats.prefix);
    const bus = await connectBus({ url: nats.url, name: 'gaps-test-bridge-2', log });
    t.teardown(() => bus.close(1000));

    const room = await conversation(db);
    await write(db, room, 12, 6);
    const rows = await findJournalAfter(db.db, '0', 1000);
    t.equal(rows.length, 12);
    const at = (i: number) => rows[i] as JournalRow;
    const publish = (i: number, prev: string) => {
      const env: BusChangeEvent = { ...journalRowToEvent(at(i)), prev };
      return bus.js.publish(nats.names.subjects.eventFor(at(i).table_name as 'messages'), encode(BusChangeEvent, env), { msgID: env.id });
    };
    const all = await openSse(`${gw.url}/api/events`, AUTH);
    for (let i = 0; i <= 2; i++) await publish(i, i === 0 ? '0' : at(i - 1).id);
    await all.waitFor((c) => ids(c).includes(Number(at(2).id)), 15_000, 'rows 0..2 delivered');

    // The journal is locked: the catch-up started by row 6 (its predecessor 5 never came) waits.
    const lock = await db.sql.reserve();
    t.teardown(() => lock.release());
    await lock`BEGIN`;
    await lock`LOCK TABLE change_journal IN ACCESS EXCLUSIVE MODE`;
    await publish(6, at(5).id);
    // While it waits, the bridge's heartbeat says it relayed up to row 9.
    const hb: BusHeartbeat = { type: 'heartbeat', position: at(9).id, at: new Date().toISOString() };
    await bus.js.publish(nats.names.subjects.eventFor('heartbeat'), encode(BusHeartbeat, hb), { msgID: `hb-${at(9).id}` });
    const age = async () => metricOf(gw.app, 'hatch_realtime_heartbeat_age_seconds');
    await waitFor(async () => (await age()) >= 0, { timeoutMs: 15_000, message: 'the heartbeat reached the hub' });
    await lock`COMMIT`;

    await all.waitFor((c) => ids(c).includes(Number(at(9).id)), 15_000, 'rows up to 9 delivered');
    for (let i = 10; i <= 11; i++) await publish(i, at(i - 1).id);
    await all.waitFor((c) => ids(c).includes(Number(at(11).id)), 15_000, 'rows 10..11 delivered');
    t.same(ids(all), await journal(db), 'every journal event once, in order: the heartbeat did not start a second reader');
    t.equal(await metricOf(gw.app, 'hatch_sse_catchups_total'), 1, 'one catch-up, extended by the heartbeat');
    all.close();
  },
);

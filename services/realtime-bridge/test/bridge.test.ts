import t from 'tap';
import postgres from 'postgres';
import { randomUUID } from 'node:crypto';
import { createTestDb, testNats, waitFor } from '@hatch/testing';
import { POSITION_PERSIST_MS } from '../src/bridge.js';
import { assertStrictlyIncreasing, insertChats, journalIds, readStream, seedConversation, startTestBridge } from './harness.js';

t.test('the bridge relays every journal row once, in journal order, from concurrent writers', async (t) => {
  const db = await createTestDb(t, { max: 8 });
  const nats = testNats(t);
  const conv = await seedConversation(db);
  const b = await startTestBridge(t, db, nats.url, nats.names, { batchSize: 50 });
  await waitFor(() => b.bridge.role() === 'active', { message: 'bridge active' });
  // 8 concurrent writers: ids are taken in one order and committed in another.
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let i = 0; i < 25; i++) await insertChats(db, conv, 1);
    }),
  );
  const ids = await journalIds(db);
  t.equal(ids.length, 200);
  await waitFor(() => b.bridge.position() === String(ids[ids.length - 1]), { timeoutMs: 20_000, message: 'bridge caught up' });
  const events = await readStream(b.bus, nats.names);
  t.same(
    events.map((e) => Number(e.id)),
    ids,
    'every row, once, in id order',
  );
  t.equal(events[0]?.event.type, 'message_update');
  t.equal(await b.metric('hatch_bridge_events_relayed_total'), 200);
});

t.test('T6: a lower id committed after a higher one was read is relayed, not skipped, and in order', async (t) => {
  const db = await createTestDb(t);
  const nats = testNats(t);
  const conv = await seedConversation(db);
  const b = await startTestBridge(t, db, nats.url, nats.names, { pollIntervalMs: 100 });
  await waitFor(() => b.bridge.role() === 'active');
  await insertChats(db, conv, 1);
  await waitFor(() => b.bridge.position() === '1');
  // Transaction A takes id 2 and stays open; B takes id 3 and commits at once.
  const a = postgres(db.url, { max: 1, onnotice: () => {} });
  t.teardown(() => a.end({ timeout: 1 }));
  let releaseA!: () => void;
  const aHeld = new Promise<void>((r) => (releaseA = r));
  let aInserted!: () => void;
  const aIn = new Promise<void>((r) => (aInserted = r));
  const aDone = a.begin(async (tx) => {
    await tx`INSERT INTO messages (id, conversation_id, from_contact, to_contact, body, channel, direction, status)
             VALUES (${randomUUID()}, ${conv}, 'me', 'you', 'slow', 'chat', 'outbound', 'stored')`;
    aInserted();
    await aHeld;
  });
  await aIn;
  await insertChats(db, conv, 1); // id 3, committed
  t.same(await journalIds(db), [1, 3], 'id 2 is not visible yet');
  // The bridge has seen the gap (3 visible, 2 not) and waits: it must not move past 1.
  await waitFor(async () => (await b.metric('hatch_bridge_gap_waits_total')) >= 1, { message: 'bridge saw the gap' });
  const polls = await b.metric('hatch_bridge_gap_waits_total');
  t.equal(b.bridge.position(), '1', 'not relayed past the open transaction');
  releaseA();
  await aDone;
  await waitFor(() => b.bridge.position() === '3', { message: 'bridge relayed 2 and 3' });
  const events = await readStream(b.bus, nats.names);
  t.same(
    events.map((e) => e.id),
    ['1', '2', '3'],
  );
  t.ok(polls >= 1);
  t.equal(await b.metric('hatch_bridge_gap_ids_skipped_total'), 0);
});

t.test('ids of rolled-back transactions are skipped once no transaction can still commit them', async (t) => {
  const db = await createTestDb(t);
  const nats = testNats(t);
  const conv = await seedConversation(db);
  const b = await startTestBridge(t, db, nats.url, nats.names);
  await waitFor(() => b.bridge.role() === 'active');
  await db.db
    .transaction()
    .execute(async (tx) => {
      await tx
        .insertInto('messages')
        .values({
          id: randomUUID(),
          conversation_id: conv,
          from_contact: 'me',
          to_contact: 'you',
          body: 'x',
          channel: 'chat',
          direction: 'outbound',
          status: 'stored',
        })
        .execute();
      throw new Error('roll back');
    })
    .catch(() => undefined);
  await insertChats(db, conv, 2);
  await waitFor(() => b.bridge.position() === '3', { message: 'relayed past the rolled-back id' });
  t.same(
    (await readStream(b.bus, nats.names)).map((e) => e.id),
    ['2', '3'],
  );
  t.equal(await b.metric('hatch_bridge_gap_ids_skipped_total'), 1);
});

t.test('one active bridge: a standby takes over from the persisted position when the active one stops; heartbeats flow', async (t) => {
  const db = await createTestDb(t);
  const nats = testNats(t);
  const conv = await seedConversation(db);
  const one = await startTestBridge(t, db, nats.url, nats.names);
  await waitFor(() => one.bridge.role() === 'active');
  const two = await startTestBridge(t, db, nats.url, nats.names);
  await insertChats(db, conv, 5);
  await waitFor(() => one.bridge.position() === '5');
  t.equal(two.bridge.role(), 'standby');
  await one.bridge.stop();
  await waitFor(() => two.bridge.role() === 'active', { message: 'standby took over' });
  await insertChats(db, conv, 5);
  await waitFor(() => two.bridge.position() === '10');
  const ids = (await readStream(two.bus, nats.names)).map((e) => Number(e.id));
  t.same(ids, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  t.equal(assertStrictlyIncreasing(ids), undefined);
  const info = await two.bus.jsm.streams.info(nats.names.streams.events, { subjects_filter: nats.names.subjects.eventFor('heartbeat') });
  // 10 events in a few batch messages, the rest heartbeats
  t.ok((info.state.subjects?.[nats.names.subjects.eventFor('heartbeat')] ?? 0) > 0, 'heartbeats are in the stream too');
});

t.test('the position is persisted at most once a second while relaying (not once per pass), and exactly at a clean stop', async (t) => {
  const db = await createTestDb(t);
  const nats = testNats(t);
  const conv = await seedConversation(db);
  // every write of a position, counted by the database itself
  await db.sql`CREATE TABLE position_writes (last_id bigint NOT NULL)`;
  await db.sql`CREATE FUNCTION count_position_write() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO position_writes VALUES (NEW.last_id); RETURN NEW; END $$`;
  await db.sql`CREATE TRIGGER count_position_write AFTER UPDATE ON bridge_positions FOR EACH ROW EXECUTE FUNCTION count_position_write()`;
  const b = await startTestBridge(t, db, nats.url, nats.names);
  await waitFor(() => b.bridge.role() === 'active', { message: 'bridge active' });
  const started = Date.now();
  for (let i = 1; i <= 20; i++) {
    await insertChats(db, conv, 1); // one commit, relayed in a pass of its own
    await waitFor(() => b.bridge.position() === String(i), { message: `row ${i} relayed` });
  }
  const elapsedMs = Date.now() - started;
  const [w] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM position_writes`;
  const writes = w?.n ?? 0;
  t.ok(writes < 10, `${writes} position writes for 20 passes: not one per pass`);
  t.ok(
    writes <= Math.ceil(elapsedMs / POSITION_PERSIST_MS) + 1,
    `${writes} position writes in ${elapsedMs} ms: at most one per ${POSITION_PERSIST_MS} ms`,
  );
  await b.bridge.stop();
  const [p] = await db.sql<{ last_id: string }[]>`SELECT last_id::text FROM bridge_positions WHERE name = 'default'`;
  t.equal(p?.last_id, '20', 'a clean stop persists the last relayed row');
});

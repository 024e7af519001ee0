import t from 'tap';
import postgres from 'postgres';
import { randomUUID } from 'node:crypto';
import { createTestDb, waitFor } from '@hatch/testing';
import { deleteOldJournalRows, findJournalAfter, journalRowToEvent, markBridgePosition, ensureBridgePosition } from '@hatch/db';
import { insertChats, seedConversation } from './harness.js';

t.test('journal triggers: insert, status/body update and delete of messages and emails each write one row', async (t) => {
  const db = await createTestDb(t);
  const conv = await seedConversation(db);
  const [mid] = await insertChats(db, conv, 1);
  await db.db
    .updateTable('messages')
    .set({ attempts: 3 })
    .where('id', '=', mid as string)
    .execute(); // not journaled
  await db.db
    .updateTable('messages')
    .set({ status: 'failed' })
    .where('id', '=', mid as string)
    .execute();
  await db.db
    .updateTable('messages')
    .set({ body: 'edited' })
    .where('id', '=', mid as string)
    .execute();
  await db.db
    .deleteFrom('messages')
    .where('id', '=', mid as string)
    .execute();
  const eid = randomUUID();
  await db.db
    .insertInto('emails')
    .values({ id: eid, to_email: ['a@example.com'], from_email: 'me@example.com', subject: 's', body: 'b' })
    .execute();
  await db.db.updateTable('emails').set({ status: 'sent' }).where('id', '=', eid).execute();
  const rows = await findJournalAfter(db.db, '0', 100);
  t.same(
    rows.map((r) => [r.table_name, r.action, r.status, r.row_id, r.conversation_id]),
    [
      ['messages', 'INSERT', 'stored', mid, conv],
      ['messages', 'UPDATE', 'failed', mid, conv],
      ['messages', 'UPDATE', 'failed', mid, conv],
      ['messages', 'DELETE', 'failed', mid, conv],
      ['emails', 'INSERT', 'queued', eid, null],
      ['emails', 'UPDATE', 'sent', eid, null],
    ],
  );
  const first = journalRowToEvent(rows[0] as (typeof rows)[number]);
  t.match(first, {
    id: String(rows[0]?.id),
    event: { type: 'message_update', action: 'INSERT', message_id: mid, conversation_id: conv, status: 'stored' },
  });
  t.match(journalRowToEvent(rows[5] as (typeof rows)[number]).event, {
    type: 'email_update',
    action: 'UPDATE',
    email_id: eid,
    status: 'sent',
  });
});

t.test(
  'the journal is written once per statement: one trigger call for a 50-row insert and one for a 50-row update, in row order',
  async (t) => {
    // One connection: the writes and the statistics read below share one backend, whose counters
    // pg_stat_force_next_flush publishes when it goes idle after that statement.
    const db = await createTestDb(t, { max: 1 });
    await db.sql`SET track_functions = 'pl'`;
    const conv = await seedConversation(db);
    const ids = await insertChats(db, conv, 50); // one statement
    await db.db.updateTable('messages').set({ status: 'failed' }).where('conversation_id', '=', conv).execute();
    await db.db.updateTable('messages').set({ attempts: 1 }).where('conversation_id', '=', conv).execute(); // no journal row
    await db.sql.begin(async (tx) => {
      await tx`UPDATE messages SET status = 'failed' WHERE id = ${randomUUID()}`;
      const [r] = await tx<{ xid: string | null }[]>`SELECT pg_current_xact_id_if_assigned()::text AS xid`;
      t.equal(r?.xid, null, 'an update of no row takes no xid (it writes nothing to commit)');
    });
    const rows = await findJournalAfter(db.db, '0', 1000);
    t.same(
      rows.map((r) => [r.action, r.row_id]),
      [...ids.map((id) => ['INSERT', id]), ...rows.slice(50).map((r) => ['UPDATE', r.row_id])],
      "the inserts in the statement's row order, then the updates",
    );
    t.same(new Set(rows.slice(50).map((r) => r.row_id)), new Set(ids), 'one UPDATE row per message whose status changed');
    t.equal(rows.length, 100);
    await db.sql`SELECT pg_stat_force_next_flush()`;
    const [calls] = await db.sql<{ n: string | null }[]>`
    SELECT sum(calls)::text AS n FROM pg_stat_user_functions WHERE funcname IN ('journal_change', 'journal_changes')`;
    t.ok(Number(calls?.n) <= 4, `the journal function ran once per statement (4 statements), not per row: ${calls?.n} calls`);
  },
);

t.test('a 100-row transaction sends exactly one NOTIFY; each transaction sends its own', async (t) => {
  const db = await createTestDb(t);
  const conv = await seedConversation(db);
  const listener = postgres(db.url, { max: 1, onnotice: () => {} });
  t.teardown(() => listener.end({ timeout: 1 }));
  const got: string[] = [];
  await listener.listen('hatch_changes', (p) => got.push(p));
  await insertChats(db, conv, 100); // one statement, one transaction
  await db.db.transaction().execute(async (tx) => {
    for (let i = 0; i < 10; i++) await tx.updateTable('messages').set({ status: 'failed' }).where('body', '=', `hello ${i}`).execute();
  });
  // NOTIFYs arrive in commit order: once the marker is here, every earlier one is too.
  await db.sql`SELECT pg_notify('hatch_changes', 'marker')`;
  await waitFor(() => got.includes('marker'), { message: 'marker notification' });
  t.equal(got.filter((p) => p !== 'marker').length, 2, 'one wake-up per transaction (100 rows, then 10 updates)');
  t.equal((await findJournalAfter(db.db, '0', 1000)).length, 110);
});

t.test('retention deletes only old rows the bridge has relayed, in bounded batches; position only moves forward', async (t) => {
  const db = await createTestDb(t);
  const conv = await seedConversation(db);
  await insertChats(db, conv, 30);
  await db.sql`UPDATE change_journal SET changed_at = now() - interval '2 days'`;
  t.equal(await ensureBridgePosition(db.db, 'default'), '0');
  await markBridgePosition(db.db, 'default', '20');
  await markBridgePosition(db.db, 'default', '5'); // a stale replica's late write
  t.equal(await ensureBridgePosition(db.db, 'default'), '20');
  t.equal(await deleteOldJournalRows(db.db, { olderThanMs: 24 * 3600_000, relayedUpTo: '20', limit: 8 }), 8);
  t.equal(await deleteOldJournalRows(db.db, { olderThanMs: 24 * 3600_000, relayedUpTo: '20', limit: 100 }), 12);
  t.equal(
    await deleteOldJournalRows(db.db, { olderThanMs: 24 * 3600_000, relayedUpTo: '20', limit: 100 }),
    0,
    'unrelayed rows stay whatever their age',
  );
  t.equal((await findJournalAfter(db.db, '0', 100)).length, 10);
});

/**
 * journal-reader.ts: reading after a position without ever passing an id that may still commit
 * (docs/realtime.md#the-gap-horizon), on real PostgreSQL with transactions held open.
 */
import { randomUUID } from 'node:crypto';
import t from 'tap';
import postgres from 'postgres';
import { createTestDb, waitFor, type Teardownable, type TestDb } from '@hatch/testing';
import { createMetricsRegistry } from '@hatch/service';
import { createJournalReader } from '../src/journal-reader.js';
import { createBridgeMetrics } from '../src/metrics.js';
import { insertChats, log, seedConversation } from './harness.js';

function readerOn(db: TestDb, batchSize: number) {
  const m = createBridgeMetrics(createMetricsRegistry('realtime-bridge'));
  const reader = createJournalReader({ db, log, metrics: m }, { batchSize });
  const read = async (after: number) => {
    const r = await reader.read(BigInt(after));
    return { ids: r.rows.map((row) => Number(row.id)), verdict: r.verdict };
  };
  return { read, m };
}

/**
 * A transaction on its own connection, held open until settled: `write` inserts a message (taking
 * a journal id), `xid` only takes a transaction id (an unrelated writer).
 */
async function openTransaction(t: Teardownable, db: TestDb, conv: string, what: 'write' | 'xid') {
  const conn = postgres(db.url, { max: 1, onnotice: () => {} });
  t.teardown(() => conn.end({ timeout: 1 }));
  let settle!: (commit: boolean) => void;
  const decided = new Promise<boolean>((r) => (settle = r));
  let started!: () => void;
  const begun = new Promise<void>((r) => (started = r));
  const done = conn
    .begin(async (tx) => {
      if (what === 'write') {
        await tx`INSERT INTO messages (id, conversation_id, from_contact, to_contact, body, channel, direction, status)
                 VALUES (${randomUUID()}, ${conv}, 'me', 'you', 'held', 'chat', 'outbound', 'stored')`;
      } else {
        await tx`SELECT pg_current_xact_id()`;
      }
      started();
      if (!(await decided)) throw new Error('roll back');
    })
    .catch(() => undefined);
  await begun;
  return {
    commit: async () => (settle(true), await done),
    rollback: async () => (settle(false), await done),
  };
}

t.test('consecutive rows after the position; "more" while batches come full, "idle" after', async (t) => {
  const db = await createTestDb(t);
  const conv = await seedConversation(db);
  await insertChats(db, conv, 5);
  const { read } = readerOn(db, 3);
  t.same(await read(0), { ids: [1, 2, 3], verdict: 'more' });
  t.same(await read(3), { ids: [4, 5], verdict: 'idle' });
  t.same(await read(5), { ids: [], verdict: 'idle' });
});

t.test('a lower id still uncommitted: the reader stops before it ("blocked") until it commits, then returns it in order', async (t) => {
  const db = await createTestDb(t);
  const conv = await seedConversation(db);
  await insertChats(db, conv, 1); // id 1
  const a = await openTransaction(t, db, conv, 'write'); // takes id 2, open
  await insertChats(db, conv, 1); // id 3, committed
  const { read, m } = readerOn(db, 100);
  t.same(await read(0), { ids: [1], verdict: 'blocked' }, 'never past the gap');
  t.same(await read(1), { ids: [], verdict: 'blocked' }, 'still open');
  await a.commit();
  t.same(await read(1), { ids: [2, 3], verdict: 'idle' }, 'the committed gap id, then the rest');
  t.equal((await m.gapWaits.get()).values[0]?.value, 1, 'one gap waited on');
  t.equal((await m.gapSkipped.get()).values[0]?.value ?? 0, 0, 'nothing skipped');
});

t.test('a rolled-back id is skipped only once every older transaction has ended (the horizon), not when it rolls back', async (t) => {
  const db = await createTestDb(t);
  const conv = await seedConversation(db);
  const older = await openTransaction(t, db, conv, 'xid'); // an unrelated writer, older than the gap
  const a = await openTransaction(t, db, conv, 'write'); // takes id 1
  await insertChats(db, conv, 1); // id 2, committed
  const { read, m } = readerOn(db, 100);
  t.same(await read(0), { ids: [], verdict: 'blocked' });
  await a.rollback();
  t.same(await read(0), { ids: [], verdict: 'blocked' }, 'rolled back, but an older transaction is still running: not proven yet');
  await older.commit();
  // the horizon is cluster-wide: another database's older transaction may still hold it a moment
  await waitFor(async () => (await read(0)).verdict === 'more', { timeoutMs: 10_000, message: 'horizon passed: the next read decides' });
  t.same(await read(0), { ids: [2], verdict: 'idle' }, 'the missing id skipped for good');
  t.equal((await m.gapSkipped.get()).values[0]?.value, 1);
});

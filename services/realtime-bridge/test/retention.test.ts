/** retention.ts: old relayed journal rows deleted in bounded batches, on real PostgreSQL. */
import t from 'tap';
import { createTestDb } from '@hatch/testing';
import { findJournalAfter } from '@hatch/db';
import { createMetricsRegistry } from '@hatch/service';
import { createBridgeMetrics } from '../src/metrics.js';
import { deleteRelayedJournal, RETENTION_MAX_BATCHES_PER_RUN } from '../src/retention.js';
import { insertChats, seedConversation } from './harness.js';

const DAY_MS = 24 * 3600_000;

t.test('a run deletes old rows up to the position only, at most RETENTION_MAX_BATCHES_PER_RUN batches; the next run goes on', async (t) => {
  const db = await createTestDb(t);
  const conv = await seedConversation(db);
  await insertChats(db, conv, 30);
  await db.sql`UPDATE change_journal SET changed_at = now() - interval '2 days' WHERE id <= 28`;
  const m = createBridgeMetrics(createMetricsRegistry('realtime-bridge'));
  const run = () => deleteRelayedJournal(db, m, { retentionMs: DAY_MS, relayedUpTo: 25n, batch: 1, stopping: () => false });
  t.equal(await run(), RETENTION_MAX_BATCHES_PER_RUN, 'one run stops at its batch bound');
  t.equal(await run(), 25 - RETENTION_MAX_BATCHES_PER_RUN, 'the next deletes the rest up to the position');
  t.equal(await run(), 0, 'rows after the position stay whatever their age');
  const left = (await findJournalAfter(db.db, '0', 100)).map((r) => Number(r.id));
  t.same(left, [26, 27, 28, 29, 30]);
  t.equal((await m.deleted.get()).values[0]?.value, 25, 'counted');
});

t.test('young rows stay though relayed; a stopping bridge deletes nothing', async (t) => {
  const db = await createTestDb(t);
  const conv = await seedConversation(db);
  await insertChats(db, conv, 10);
  const m = createBridgeMetrics(createMetricsRegistry('realtime-bridge'));
  t.equal(
    await deleteRelayedJournal(db, m, { retentionMs: DAY_MS, relayedUpTo: 10n, batch: 100, stopping: () => false }),
    0,
    'younger than the window',
  );
  await db.sql`UPDATE change_journal SET changed_at = now() - interval '2 days'`;
  t.equal(await deleteRelayedJournal(db, m, { retentionMs: DAY_MS, relayedUpTo: 10n, batch: 100, stopping: () => true }), 0, 'stopping');
  t.equal(await deleteRelayedJournal(db, m, { retentionMs: DAY_MS, relayedUpTo: 10n, batch: 100, stopping: () => false }), 10);
});

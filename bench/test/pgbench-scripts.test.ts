/**
 * P1's and P3's pgbench baselines write what they claim, on a migrated database: a group of sends
 * writes per send a message (with its journal row), a timeline row and a conversation upsert,
 * per SMS an outbox row, and once per group the SMS daily counter (what acceptMessages writes);
 * the per-row NOTIFY script writes its rows with one notification each.
 */
import t from 'tap';
import { createTestDb } from '@hatch/testing';
import { createRawTables, notifyRowsScript, sendScript } from '../lib/infra.js';

/** pgbench's variables substituted, its meta-commands dropped: the SQL one transaction runs. */
const asSql = (script: string, vars: Record<string, number>) =>
  script
    .split('\n')
    .filter((l) => !l.startsWith('\\'))
    .join('\n')
    .replace(/:([a-z]+)/g, (m: string, v: string) => (v in vars ? String(vars[v]) : m));

t.test('a group of sends writes every row a send writes, the SMS daily counter included', async (t) => {
  const db = await createTestDb(t);
  await db.sql.unsafe(asSql(sendScript(6), { c: 42, k: 0 }));
  const count = async (q: string) => Number((await db.sql.unsafe(q))[0]?.n);
  t.equal(await count('SELECT count(*) AS n FROM messages'), 6);
  t.equal(await count("SELECT count(*) AS n FROM messages WHERE channel = 'sms' AND status = 'queued'"), 3, 'half SMS');
  t.equal(await count("SELECT count(*) AS n FROM messages WHERE channel = 'chat' AND status = 'stored'"), 3, 'half chat');
  t.equal(await count('SELECT count(*) AS n FROM status_events'), 6, 'a timeline row each');
  t.equal(await count('SELECT count(*) AS n FROM change_journal'), 6, 'a journal row each (the trigger)');
  t.equal(await count('SELECT count(*) AS n FROM outbox'), 3, 'an outbox row per SMS');
  t.equal(await count('SELECT count(*) AS n FROM conversations'), 6, 'no conversation twice in one statement');
  t.equal(await count('SELECT sum(sent) AS n FROM sms_daily_counts'), 3, 'the SMS counted for the day');
  // the same recipients again: conversations are updated, the counter grows
  await db.sql.unsafe(asSql(sendScript(6), { c: 42, k: 0 }));
  t.equal(await count('SELECT count(*) AS n FROM conversations'), 6);
  t.equal(await count('SELECT min(message_count) AS n FROM conversations'), 2);
  t.equal(await count('SELECT sum(sent) AS n FROM sms_daily_counts'), 6);
  // one send per commit: a chat send does not touch the counter
  await db.sql.unsafe(asSql(sendScript(1), { c: 7, k: 0 }));
  t.equal(await count("SELECT count(*) AS n FROM messages WHERE to_contact = 'bench-contact-000000000008'"), 1);
  t.equal(await count('SELECT sum(sent) AS n FROM sms_daily_counts'), 6);
  t.throws(() => sendScript(0), /group must be/);
});

t.test('per-row NOTIFY: the rows of one transaction, one notification each', async (t) => {
  const db = await createTestDb(t);
  await createRawTables(db.url);
  const got: string[] = [];
  const listener = await db.sql.listen('bench_raw_changes', (p) => got.push(p));
  t.teardown(() => listener.unlisten());
  await db.sql.unsafe(asSql(notifyRowsScript(20), { c: 5 }));
  t.equal(Number((await db.sql`SELECT count(*) AS n FROM bench_raw_notify`)[0]?.n), 20);
  const deadline = Date.now() + 5000;
  while (got.length < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.equal(got.length, 20);
});

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { sql as ksql } from 'kysely';
import postgres from 'postgres';
import { createEmptyDatabase, createTestDb, waitFor } from '@hatch/testing';
import { createDb, ensureDatabase, isConnectionError, migrate, quoteIdent, serverTimeouts } from '../src/index.js';

// Issue 14: PostgreSQL stops what the client gave up on. Each test uses its own application_name,
// so pg_stat_activity shows only its own backends (tap runs files in parallel).

async function backends(admin: postgres.Sql, app: string): Promise<Array<{ pid: number; state: string | null; query: string }>> {
  return admin<{ pid: number; state: string | null; query: string }[]>`
    SELECT pid, state, query FROM pg_stat_activity WHERE application_name = ${app} AND pid <> pg_backend_pid()`;
}

t.test('the server bound sits just under the client query bound, the idle-in-transaction bound twice it (at least 60 s)', async (t) => {
  t.same(serverTimeouts(30_000), { statement_timeout: 29_000, idle_in_transaction_session_timeout: 60_000 });
  t.same(serverTimeouts(3000), { statement_timeout: 2700, idle_in_transaction_session_timeout: 60_000 });
  t.same(serverTimeouts(45_000), { statement_timeout: 44_000, idle_in_transaction_session_timeout: 90_000 });
  t.same(serverTimeouts(3000, { statementTimeoutMs: 5, idleInTransactionTimeoutMs: 7 }), {
    statement_timeout: 5,
    idle_in_transaction_session_timeout: 7,
  });
});

t.test('every pooled connection starts with the server-side bounds (SHOW on the connection itself)', async (t) => {
  const test = await createTestDb(t);
  const pool = createDb(test.url, { max: 2, applicationName: 'hatch-t-show' });
  t.teardown(() => pool.close(1));
  const row = await ksql<{
    s: string;
    i: string;
  }>`SELECT current_setting('statement_timeout') AS s, current_setting('idle_in_transaction_session_timeout') AS i`.execute(pool.db);
  t.same(row.rows[0], { s: '29s', i: '1min' }, 'the defaults for the 30 s client bound');
});

t.test(
  'a query longer than the server bound is cancelled by PostgreSQL (57014, a connection error) and stops running there; the connection stays usable',
  async (t) => {
    const test = await createTestDb(t);
    const app = `hatch-t-stmt-${process.pid}`;
    // client bound 5 s, server bound 500 ms: a stuck query is cut by the server, not left running
    const pool = createDb(test.url, { max: 1, applicationName: app, queryTimeoutMs: 5000, statementTimeoutMs: 500 });
    t.teardown(() => pool.close(1));
    const admin = postgres(test.url, { max: 1, onnotice: () => {} });
    t.teardown(() => admin.end({ timeout: 1 }));

    const started = Date.now();
    const err = (await ksql`SELECT pg_sleep(30)`.execute(pool.db).then(
      () => undefined,
      (e: unknown) => e,
    )) as { code?: string; message?: string } | undefined;
    const took = Date.now() - started;
    t.equal(err?.code, '57014', `cancelled by the server: ${err?.message}`);
    t.ok(took < 4000, `within the server bound, before the client's (${took} ms)`);
    t.ok(isConnectionError(err), 'answered like a timeout: 503 / retry, never a 500');
    const running = (await backends(admin, app)).filter((b) => b.state === 'active' && /pg_sleep/.test(b.query));
    t.same(running, [], 'no pg_sleep left running server-side');
    const again = await ksql<{ one: number }>`SELECT 1 AS one`.execute(pool.db);
    t.equal(again.rows[0]?.one, 1, 'the same (only) connection answers the next query');
  },
);

t.test('a session left idle inside a transaction is ended by PostgreSQL (its locks released); the pool carries on', async (t) => {
  const test = await createTestDb(t);
  const app = `hatch-t-idle-${process.pid}`;
  const pool = createDb(test.url, { max: 1, applicationName: app, idleInTransactionTimeoutMs: 500 });
  t.teardown(() => pool.close(1));
  const admin = postgres(test.url, { max: 1, onnotice: () => {} });
  t.teardown(() => admin.end({ timeout: 1 }));

  // A client that opened a transaction, took a lock, then hung (never committed, never sent
  // anything again): the transaction callback waits until the server has ended its session.
  let pid = 0;
  const outcome = pool.db
    .transaction()
    .execute(async (tx) => {
      pid = (await ksql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(tx)).rows[0]?.pid ?? 0;
      await ksql`SELECT pg_advisory_xact_lock(4242)`.execute(tx);
      await waitFor(async () => (await admin`SELECT 1 FROM pg_stat_activity WHERE pid = ${pid}`).length === 0, {
        timeoutMs: 10_000,
        message: 'the idle-in-transaction session ended',
      });
      await ksql`SELECT 1`.execute(tx);
    })
    .then(
      () => undefined,
      (e: unknown) => e as { code?: string; message?: string },
    );
  const err = await outcome;
  t.ok(pid > 0);
  t.ok(err, 'the hung transaction did not commit');
  t.ok(isConnectionError(err), `failed as a connection error (${err?.code}: ${err?.message})`);
  const lock = await admin<{ ok: boolean }[]>`SELECT pg_try_advisory_lock(4242) AS ok`;
  t.equal(lock[0]?.ok, true, 'its lock was released');
  await admin`SELECT pg_advisory_unlock(4242)`;
  const again = await ksql<{ one: number }>`SELECT 1 AS one`.execute(pool.db);
  t.equal(again.rows[0]?.one, 1, 'the pool opens a new connection and answers');
});

t.test('migrations run without the statement bound (a long migration step is not cut by a database default)', async (t) => {
  const url = await createEmptyDatabase(t);
  await ensureDatabase(url);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hatch-mig-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // A database default like the services' bound would cut the step; the migrator sets 0.
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  t.teardown(() => admin.end({ timeout: 1 }));
  await admin.unsafe(`ALTER DATABASE ${quoteIdent(new URL(url).pathname.slice(1))} SET statement_timeout = '100ms'`);
  fs.writeFileSync(path.join(dir, '0001_slow.sql'), 'SELECT pg_sleep(0.5);\nCREATE TABLE slow_done (id int);\n');
  const result = await migrate({ url, dir });
  t.same(result.applied, ['0001_slow.sql']);
  const done = await admin<{ ok: boolean }[]>`SELECT to_regclass('slow_done') IS NOT NULL AS ok`;
  t.equal(done[0]?.ok, true, 'the step ran to the end');
});

/**
 * The bridge never stops relaying silently, and never spins (issue 17), on real bridge processes:
 * - its takeover read fails: it releases the lock, says not ready, retries with backoff, and
 *   relays once the read works again (it used to stay "active", ready, holding the lock, dead);
 * - its database is dropped under it: it backs off (little CPU over a window, measured from
 *   /proc) and says not ready.
 */
import fs from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import postgres from 'postgres';
import t from 'tap';
import { createTestDb, spawnService, testAdminUrl, testNats, waitFor, type ServiceProcess } from '@hatch/testing';
import { connectBus } from '@hatch/bus';
import { bridgeEnv, insertChats, journalIds, log, readStream, seedConversation } from './harness.js';

async function healthPort(p: ServiceProcess): Promise<number> {
  const line = await p.waitForLog((l) => l.msg === 'realtime-bridge ready', 30_000);
  return line.healthPort as number;
}

interface Readiness {
  status: number;
  body: { status: string; role?: string; checks: Record<string, { ok: boolean; error?: string }> };
}

async function readyz(port: number): Promise<Readiness> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: (await res.json()) as Readiness['body'] };
}

/** CPU time (user + system) the process has used, in ms, from /proc/<pid>/stat. */
function cpuMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // fields after the command name (which may hold spaces) in parentheses
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}

t.test(
  'the takeover read fails: the bridge releases the lock, reports not ready, retries with backoff, and relays once the read works',
  async (t) => {
    const db = await createTestDb(t);
    const nats = testNats(t);
    const conv = await seedConversation(db);
    // the position table the takeover reads (ensureBridgePosition) is gone for now
    await db.sql`ALTER TABLE bridge_positions RENAME TO bridge_positions_away`;
    const bridge = spawnService(t, 'realtime-bridge', bridgeEnv(db, nats));
    const port = await healthPort(bridge);
    await waitFor(async () => (await readyz(port)).status === 503, {
      timeoutMs: 15_000,
      message: '/readyz says not ready while the takeover read fails',
    });
    const r = await readyz(port);
    t.equal(r.body.checks.relay?.ok, false, `the relay check names the failure: ${r.body.checks.relay?.error}`);
    t.equal(r.body.checks.database?.ok, true, 'though the database itself answers');
    // Released: the advisory lock is free between attempts (a standby could take it).
    await waitFor(
      async () => {
        const [row] = await db.sql<
          { n: number }[]
        >`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = ${db.name}) AND granted`;
        return row?.n === 0;
      },
      { timeoutMs: 10_000, intervalMs: 10, message: 'the advisory lock is released after the failed takeover' },
    );
    await db.sql`ALTER TABLE bridge_positions_away RENAME TO bridge_positions`;
    await insertChats(db, conv, 20);
    const ids = await journalIds(db);
    const bus = await connectBus({ url: nats.url, name: 'relay-health-check', log });
    t.teardown(() => bus.close(1000));
    await waitFor(async () => (await readStream(bus, nats.names)).length >= ids.length, {
      timeoutMs: 30_000,
      message: 'relaying again once the read works',
    });
    t.same(
      (await readStream(bus, nats.names)).map((e) => Number(e.id)),
      ids,
      'every event once, in order',
    );
    await waitFor(async () => (await readyz(port)).status === 200, { timeoutMs: 10_000, message: 'ready again' });
    t.equal((await readyz(port)).body.role, 'active');
  },
);

t.test('an active bridge whose journal reads keep failing steps down after its stall bound and reports not ready', async (t) => {
  const db = await createTestDb(t);
  const nats = testNats(t);
  const bridge = spawnService(t, 'realtime-bridge', bridgeEnv(db, nats, { HATCH_BRIDGE_RELAY_STALL_MS: '2000' }));
  const port = await healthPort(bridge);
  await bridge.waitForLog((l) => l.msg === 'became the active bridge', 30_000);
  await waitFor(async () => (await readyz(port)).status === 200, { timeoutMs: 10_000, message: 'ready while relaying' });
  // every pass's read fails from now on; the lock connection is untouched
  await db.sql`ALTER TABLE change_journal RENAME TO change_journal_away`;
  t.teardown(() => db.sql`ALTER TABLE IF EXISTS change_journal_away RENAME TO change_journal`.catch(() => undefined));
  await waitFor(async () => (await readyz(port)).status === 503, {
    timeoutMs: 15_000,
    message: '/readyz says not ready once reads fail past the bound',
  });
  await waitFor(
    async () => {
      const [row] = await db.sql<
        { n: number }[]
      >`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = ${db.name}) AND granted`;
      return row?.n === 0;
    },
    { timeoutMs: 15_000, intervalMs: 10, message: 'the stalled bridge released the lock for a standby' },
  );
  t.pass('not ready, and the lock released');
  await db.sql`ALTER TABLE change_journal_away RENAME TO change_journal`;
  await waitFor(async () => (await readyz(port)).status === 200, { timeoutMs: 40_000, message: 'ready again once reads work' });
  t.equal((await readyz(port)).body.role, 'active', 'and active again');
});

t.test('the database is dropped under the bridge: it backs off (little CPU over a window) and reports not ready', async (t) => {
  const db = await createTestDb(t);
  const nats = testNats(t);
  const bridge = spawnService(t, 'realtime-bridge', bridgeEnv(db, nats));
  const port = await healthPort(bridge);
  await bridge.waitForLog((l) => l.msg === 'became the active bridge', 30_000);
  await db.close(1);
  const admin = postgres(testAdminUrl(), { max: 1, onnotice: () => {} });
  t.teardown(() => admin.end({ timeout: 1 }));
  await admin.unsafe(`DROP DATABASE "${db.name}" WITH (FORCE)`);
  await waitFor(async () => (await readyz(port)).status === 503, {
    timeoutMs: 20_000,
    message: '/readyz says not ready without its database',
  });
  // Let the retry delays grow to their cap, then measure one window.
  await bridge.waitForLog((l) => l.msg === 'advisory lock attempt failed', 20_000);
  // Not waits for a condition: a settling time, then the window the CPU time is measured over.
  await delay(5000);
  const windowMs = 10_000;
  const attemptsBefore = bridge.logs().filter((l) => l.msg === 'advisory lock attempt failed').length;
  const before = cpuMs(bridge.pid);
  const startedAt = Date.now();
  await delay(windowMs);
  const used = cpuMs(bridge.pid) - before;
  const elapsed = Date.now() - startedAt;
  const attempts = bridge.logs().filter((l) => l.msg === 'advisory lock attempt failed').length - attemptsBefore;
  const share = used / elapsed;
  t.ok(
    share < 0.03,
    `CPU over ${elapsed} ms: ${used} ms (${(share * 100).toFixed(1)} % of a core); lock attempts in the window: ${attempts}`,
  );
  t.ok(attempts <= 3, `lock attempts back off to their cap (${attempts} in ${elapsed} ms)`);
  const r = await readyz(port);
  t.equal(r.status, 503, 'still not ready');
  t.equal(r.body.checks.relay?.ok, false, `the relay check fails too: ${r.body.checks.relay?.error}`);
});

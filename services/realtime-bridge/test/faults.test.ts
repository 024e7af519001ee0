/**
 * Bridge fault tests (docs/reliability.md#fault-tests): kill -9 of the active bridge process (failover to a
 * standby process), T5 (its LISTEN and lock backends terminated mid-stream), NATS restart,
 * PostgreSQL crash (down for a while, then back).
 * Each: every journal row ends up in the stream exactly once, in journal order.
 */
import t from 'tap';
import { createTestDb, spawnNats, spawnPostgres, spawnService, testNats, urlForDatabase, waitFor, type TestDb } from '@hatch/testing';
import { createDb, defaultMigrationsDir, migrate } from '@hatch/db';
import { connectBus } from '@hatch/bus';
import { stepDownBoundMs } from '../src/bridge.js';
import {
  assertStrictlyIncreasing,
  bridgeEnv,
  insertChats,
  journalIds,
  log,
  readStream,
  seedConversation,
  startTestBridge,
} from './harness.js';

/** Writes `total` messages in transactions of `per`, yielding between them. */
async function writer(
  db: Parameters<typeof insertChats>[0],
  conv: string,
  total: number,
  per: number,
  onProgress?: (written: number) => Promise<void>,
): Promise<void> {
  for (let written = 0; written < total; written += per) {
    await insertChats(db, conv, per);
    await onProgress?.(written + per);
  }
}

t.test('kill -9 of the active bridge: the standby process takes over within seconds; 500 events, each once, in order', async (t) => {
  const db = await createTestDb(t);
  const nats = testNats(t);
  const conv = await seedConversation(db);
  // Batches of other bounds in each process: a batch the killed one stored past its saved
  // position is never the same message (msgID) as the standby's, so only the takeover rule (pass
  // over what the stream's last message holds) keeps those rows from being stored twice.
  const a = spawnService(t, 'realtime-bridge', bridgeEnv(db, nats, { HATCH_BRIDGE_BATCH_SIZE: '20' }));
  await a.waitForLog((l) => l.msg === 'became the active bridge', 30_000);
  const b = spawnService(t, 'realtime-bridge', bridgeEnv(db, nats, { HATCH_BRIDGE_BATCH_SIZE: '7' }));
  await b.waitForLog((l) => l.msg === 'realtime-bridge ready', 30_000);
  let killedAt = 0;
  await writer(db, conv, 500, 10, async (written) => {
    if (written === 200) {
      // mid-stream: some relayed, some not yet
      killedAt = Date.now();
      await a.kill9();
    }
  });
  await b.waitForLog((l) => l.msg === 'became the active bridge', 15_000);
  const takeoverMs = Date.now() - killedAt;
  t.ok(takeoverMs < 10_000, `standby active ${takeoverMs} ms after the kill`);
  const ids = await journalIds(db);
  t.equal(ids.length, 500);
  const bus = await connectBus({ url: nats.url, name: 'failover-check', log });
  t.teardown(() => bus.close(1000));
  await waitFor(async () => (await readStream(bus, nats.names)).length >= 500, { timeoutMs: 30_000, message: 'all 500 in the stream' });
  const got = (await readStream(bus, nats.names)).map((e) => Number(e.id));
  t.same(got, ids, 'every event exactly once, in journal order');
  t.equal(assertStrictlyIncreasing(got), undefined);
});

t.test('T5: the bridge’s LISTEN and lock backends are terminated mid-stream; it re-LISTENs, re-takes the lock, catches up', async (t) => {
  const db = await createTestDb(t);
  const nats = testNats(t);
  const conv = await seedConversation(db);
  // Long poll: after the LISTEN connection dies, only a re-issued LISTEN (or the catch-up that
  // follows it) can deliver quickly.
  const b = await startTestBridge(t, db, nats.url, nats.names, { pollIntervalMs: 60_000, lockRetryMs: 300 });
  await waitFor(() => b.bridge.role() === 'active');
  const terminate = (app: string) =>
    db.sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ${db.name} AND application_name = ${app}`;
  await writer(db, conv, 300, 5, async (written) => {
    if (written === 100) await terminate('hatch-realtime-bridge-listen');
    if (written === 200) await terminate('hatch-realtime-bridge-lock');
  });
  const ids = await journalIds(db);
  await waitFor(() => b.bridge.position() === String(ids[ids.length - 1]), { timeoutMs: 20_000, message: 'caught up' });
  const got = (await readStream(b.bus, nats.names)).map((e) => Number(e.id));
  t.same(got, ids, 'all 300 exactly once, in order');
  // The lost lock connection is found by the bridge's periodic check, not by the relay: wait for it.
  await waitFor(async () => (await b.metric('hatch_bridge_takeovers_total')) >= 2, {
    timeoutMs: 30_000,
    message: 'stepped down on the lost lock connection and took the lock again',
  });
  t.pass('stepped down on the lost lock connection and took the lock again');
  // Live again through NOTIFY alone (poll is 60 s): the LISTEN was re-issued.
  await insertChats(db, conv, 1);
  const last = (await journalIds(db)).at(-1);
  await waitFor(() => b.bridge.position() === String(last), { timeoutMs: 10_000, message: 'woken by NOTIFY after reconnect' });
});

t.test('NATS restart mid-stream: the bridge retries from its position; every event lands once, in order', async (t) => {
  const db = await createTestDb(t);
  const server = await spawnNats(t);
  const nats = testNats(t, { url: server.url });
  const conv = await seedConversation(db);
  const b = await startTestBridge(t, db, server.url, nats.names, { pollIntervalMs: 200 });
  await waitFor(() => b.bridge.role() === 'active');
  await writer(db, conv, 200, 10, async (written) => {
    if (written === 100) await server.restart();
  });
  const ids = await journalIds(db);
  await waitFor(() => b.bridge.position() === String(ids[ids.length - 1]), { timeoutMs: 30_000, message: 'caught up after the restart' });
  const got = (await readStream(b.bus, nats.names)).map((e) => Number(e.id));
  t.same(got, ids, 'all 200 exactly once, in order');
});

t.test(
  'PostgreSQL crashes and stays down a while: the bridge steps down, retries, takes the lock again and relays everything once, in order',
  async (t) => {
    const pg = await spawnPostgres(t);
    const url = urlForDatabase(pg.url, 'hatch');
    await migrate({ url, dir: defaultMigrationsDir() });
    // The bridge's pool (shared with this test's writes): bounds short enough that the step-down
    // deadline below, which follows from them, stays well inside the test's time.
    const pool = { acquireTimeoutMs: 5000, queryTimeoutMs: 5000 };
    const lockRetryMs = 200;
    const handle = createDb(url, { max: 4, applicationName: 'hatch-test', ...pool });
    t.teardown(() => handle.close(1));
    const db: TestDb = { ...handle, url, name: 'hatch' };
    const nats = testNats(t);
    const conv = await seedConversation(db);
    const b = await startTestBridge(t, db, nats.url, nats.names, { pollIntervalMs: 200, lockRetryMs });
    await waitFor(() => b.bridge.role() === 'active');
    await writer(db, conv, 50, 5);
    await pg.stop('immediate');
    // down long enough for the bridge to notice and keep failing (its reconnects are refused)
    const bound = stepDownBoundMs({ lockRetryMs, pool });
    await waitFor(() => b.bridge.role() === 'standby', { timeoutMs: bound, message: `bridge stepped down within its bound (${bound} ms)` });
    await waitFor(async () => (await b.metric('hatch_bridge_takeovers_total')) >= 1 && b.bridge.role() === 'standby', { timeoutMs: 5000 });
    await pg.start();
    await writer(db, conv, 50, 5);
    const ids = await journalIds(db);
    t.equal(ids.length, 100);
    await waitFor(() => b.bridge.role() === 'active' && b.bridge.position() === String(ids[ids.length - 1]), {
      timeoutMs: 30_000,
      message: 'caught up after the crash',
    });
    const got = (await readStream(b.bus, nats.names)).map((e) => Number(e.id));
    t.same(got, ids, 'all 100 exactly once, in order');
    t.ok((await b.metric('hatch_bridge_takeovers_total')) >= 2, 'took the lock again after the restart');
  },
);

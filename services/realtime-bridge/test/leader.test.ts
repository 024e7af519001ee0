/** leader.ts: the advisory lock on a dedicated connection (docs/realtime.md#one-active-bridge), on real PostgreSQL. */
import t from 'tap';
import { createTestDb, type Teardownable, type TestDb } from '@hatch/testing';
import { createLeaderLock } from '../src/leader.js';
import { connectionFactory, log } from './harness.js';

function lockOn(t: Teardownable, db: TestDb) {
  const conns = connectionFactory(db.url);
  const lock = createLeaderLock(() => conns.open('lock'), log);
  t.teardown(async () => {
    await lock.release();
    await conns.closeAll();
  });
  return lock;
}

t.test('one holder per database: a second candidate is refused until the holder releases; then it takes the lock', async (t) => {
  const db = await createTestDb(t);
  const a = lockOn(t, db);
  const b = lockOn(t, db);
  t.equal(await a.tryLock(), 'taken', 'the first candidate takes it');
  t.equal(await a.held(), true, 'and holds it');
  t.equal(await b.tryLock(), 'busy', 'the second is refused');
  t.equal(await b.held(), false, 'and does not hold it');
  await a.release();
  t.equal(await a.held(), false, 'released');
  t.equal(await b.tryLock(), 'taken', 'the second takes it once released');
});

t.test(
  'the holder’s backend ended: held() turns false though postgres.js reconnects, and another candidate takes the lock at once',
  async (t) => {
    const db = await createTestDb(t);
    const a = lockOn(t, db);
    const b = lockOn(t, db);
    t.equal(await a.tryLock(), 'taken');
    const [holder] = await db.sql<
      { pid: number }[]
    >`SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = ${db.name}) AND granted`;
    t.ok(holder, 'the lock is held by a backend');
    await db.sql`SELECT pg_terminate_backend(${holder?.pid as number})`;
    t.equal(await a.held(), false, 'a new backend (or none) is not the holder');
    t.equal(await b.tryLock(), 'taken', 'the lock was freed with the backend');
  },
);

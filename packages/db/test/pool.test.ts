import t from 'tap';
import { createTestDb } from '@hatch/testing';
import { ACQUIRE_TIMEOUT, createDb, isConnectionError } from '../src/index.js';

t.test('a query waits for a pooled connection only within the acquire bound; the connection handed over late goes back to the pool', async (t) => {
  const test = await createTestDb(t);
  const pool = createDb(test.url, { max: 1, acquireTimeoutMs: 300 });
  t.teardown(() => pool.close(1));
  const one = async () => (await pool.db.selectNoFrom((eb) => eb.val('1').as('one')).executeTakeFirstOrThrow()).one;
  t.equal(await one(), '1', 'the pool works');

  const held = await pool.sql.reserve(); // the pool's only connection
  const started = Date.now();
  const err = (await one().then(
    () => undefined,
    (e: unknown) => e,
  )) as { code?: string; message?: string } | undefined;
  const waited = Date.now() - started;
  t.equal(err?.code, ACQUIRE_TIMEOUT, `refused with ${ACQUIRE_TIMEOUT} (${err?.message})`);
  t.ok(waited >= 250 && waited < 5000, `after about the bound (${waited} ms)`);
  t.ok(isConnectionError(err), 'a connection error: the gateway answers 503, a worker retries');

  // The refused query's reserve is still queued in postgres.js: released, the connection goes to
  // it, and it must come straight back, or the next query would wait for good.
  held.release();
  t.equal(await one(), '1', 'the next query gets the connection');
  t.equal(await one(), '1', 'and the one after');
});

import t from 'tap';
import { createTestDb, spawnPostgres, urlForDatabase, waitFor } from '@hatch/testing';
import { ACQUIRE_TIMEOUT, createDb, isConnectionError } from '../src/index.js';

t.test(
  'a query waits for a pooled connection only within the acquire bound; the connection handed over late goes back to the pool',
  async (t) => {
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
  },
);

t.test(
  'PostgreSQL stopped (immediate) and started again and again under queries and transactions: every one settles within its bounds, and the pool works after',
  async (t) => {
    const pg = await spawnPostgres(t);
    const pool = createDb(urlForDatabase(pg.url, 'postgres'), {
      max: 10,
      connectTimeoutSeconds: 2,
      acquireTimeoutMs: 3000,
      queryTimeoutMs: 3000,
    });
    t.teardown(() => pool.close(1));
    const pending = new Map<number, number>();
    const codes = new Map<string, number>();
    let n = 0;
    let ok = 0;
    let stop = false;
    const worker = async () => {
      while (!stop) {
        const id = n++;
        pending.set(id, Date.now());
        try {
          if (id % 2 === 0)
            await pool.db.transaction().execute(async (tx) => {
              await tx.selectNoFrom((eb) => eb.val('1').as('x')).execute();
              await tx.selectNoFrom((eb) => eb.val('2').as('x')).execute();
            });
          else await pool.db.selectNoFrom((eb) => eb.val('1').as('x')).execute();
          ok++;
        } catch (err) {
          const code = String((err as { code?: string }).code);
          codes.set(code, (codes.get(code) ?? 0) + 1);
          await new Promise((r) => setTimeout(r, 20));
        } finally {
          pending.delete(id);
        }
      }
    };
    const workers = Array.from({ length: 24 }, () => worker());
    for (let round = 0; round < 6; round++) {
      await waitFor(() => ok > 0, { message: 'queries run' });
      ok = 0;
      await pg.stop('immediate');
      await pg.start();
    }
    await waitFor(() => ok >= 100, { timeoutMs: 15_000, message: 'queries run again after the last restart' });
    stop = true;
    const finished = await Promise.race([
      Promise.all(workers).then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 15_000)),
    ]);
    const now = Date.now();
    t.ok(
      finished,
      `every operation settled (left: ${[...pending.values()].map((s) => `${now - s} ms`).join(', ') || 'none'}; errors seen: ${JSON.stringify(Object.fromEntries(codes))})`,
    );
    t.ok(
      [...codes.keys()].every((c) => isConnectionError({ code: c })),
      'every failure is a connection error (503 / retry), never anything else',
    );
    t.equal((await pool.db.selectNoFrom((eb) => eb.val('1').as('one')).executeTakeFirstOrThrow()).one, '1', 'the pool answers after');
  },
);

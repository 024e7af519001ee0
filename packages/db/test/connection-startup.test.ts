/**
 * A connection cut while postgres.js is still starting it up (its array-types query, sent on
 * every new connection) must fail the queries waiting on it, not the process. postgres.js 3.4.9
 * drops the promise of that startup query (porsager/postgres#1192, #1223): a connection reset
 * there surfaced as an unhandled `read ECONNRESET`, which kills a service and failed the
 * bridge's PostgreSQL crash test in CI (a pool reconnecting just as PostgreSQL went down).
 * patches/postgres@3.4.9.patch settles it.
 */
import net from 'node:net';
import t from 'tap';
import { createTestDb, type Teardownable } from '@hatch/testing';
import { createDb, isConnectionError } from '../src/index.js';

/** A TCP proxy to PostgreSQL that resets both sides once the client asks for pg_type (the startup types query). */
async function resetOnTypesQuery(t: Teardownable, target: URL): Promise<{ port: number; resets: () => number }> {
  let resets = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    sockets.add(client).add(upstream);
    client.on('error', () => {});
    upstream.on('error', () => {});
    client.on('data', (chunk) => {
      if (chunk.includes('pg_catalog.pg_type')) {
        resets++;
        client.resetAndDestroy();
        upstream.destroy();
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => client.destroyed || client.write(chunk));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { port: (server.address() as net.AddressInfo).port, resets: () => resets };
}

t.test(
  'a connection reset during its startup types query fails the waiting query as a connection error; nothing is left unhandled',
  async (t) => {
    const test = await createTestDb(t);
    const target = new URL(test.url);
    const proxy = await resetOnTypesQuery(t, target);
    const viaProxy = new URL(test.url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);

    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    t.teardown(() => void process.off('unhandledRejection', onUnhandled));

    // no reconnect backoff worth waiting for, and a short acquire bound: the query fails fast
    const pool = createDb(viaProxy.toString(), { max: 1, acquireTimeoutMs: 2000, connectTimeoutSeconds: 2 });
    t.teardown(() => pool.close(1));
    const err = await pool.db
      .selectNoFrom((eb) => eb.val('1').as('one'))
      .execute()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    t.ok(proxy.resets() >= 1, 'the proxy reset a connection at its types query');
    t.ok(err !== undefined && isConnectionError(err), `the query failed as a connection error (${(err as Error | undefined)?.message})`);
    // The reset came seconds before the acquire bound failed the query, and an unhandled rejection
    // is reported at the end of the turn it happens in: it would be here already.
    t.same(
      unhandled.map((e) => (e as Error).message),
      [],
      'no unhandled rejection',
    );
  },
);

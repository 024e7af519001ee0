import t from 'tap';
import { spawnNats, waitFor } from '@hatch/testing';
import { testGateway } from './helpers.js';

t.test('GET /readyz is 503 naming NATS while its own nats-server is down, and 200 again after it returns', async (t) => {
  const nats = await spawnNats(t);
  const { app } = await testGateway(t, {}, { natsUrl: nats.url });
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
  await nats.kill();
  let body: { status?: string; checks?: Record<string, { ok: boolean; error?: string }> } = {};
  await waitFor(
    async () => {
      const res = await app.inject({ method: 'GET', url: '/readyz' });
      body = res.json();
      return res.statusCode === 503;
    },
    { timeoutMs: 15_000, message: 'readyz never reported NATS down' },
  );
  t.equal(body.status, 'not_ready');
  t.equal(body.checks?.nats?.ok, false, 'names nats');
  t.equal(body.checks?.database?.ok, true, 'database still fine');
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'liveness unaffected');
  await nats.start();
  await waitFor(async () => (await app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200, {
    timeoutMs: 20_000,
    message: 'readyz never recovered after NATS came back',
  });
  t.pass('recovered without a restart');
});

t.test('GET /readyz is 503 naming the database when PostgreSQL is unreachable', async (t) => {
  const { app, db } = await testGateway(t);
  await db.sql.end({ timeout: 1 }); // the pool is gone: every query fails like a dead server
  const res = await app.inject({ method: 'GET', url: '/readyz' });
  t.equal(res.statusCode, 503);
  t.match(res.json(), { status: 'not_ready', checks: { database: { ok: false }, nats: { ok: true } } });
});

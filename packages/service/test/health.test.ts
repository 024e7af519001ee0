import { PassThrough } from 'node:stream';
import t from 'tap';
import { createLogger } from '@hatch/log';
import { createMetricsRegistry, onShutdown, runReadiness, startHealthServer } from '../src/index.js';

const silent = createLogger({ service: 'test', level: 'silent', destination: new PassThrough() });

t.test('readiness names the dependency that does not answer, bounded by a timeout', async (t) => {
  const r = await runReadiness(
    {
      database: async () => {},
      nats: async () => {
        throw new Error('nats: not connected');
      },
      slow: () => new Promise(() => {}),
    },
    100,
  );
  t.equal(r.status, 'not_ready');
  t.same(r.checks.database, { ok: true });
  t.same(r.checks.nats, { ok: false, error: 'nats: not connected' });
  t.match(r.checks.slow, { ok: false, error: /within 100 ms/ });
});

t.test("the workers' health server serves /healthz, /readyz (503 when a check fails) and /metrics", async (t) => {
  let natsUp = true;
  const server = await startHealthServer({
    port: 0,
    host: '127.0.0.1',
    log: silent,
    registry: createMetricsRegistry('unit'),
    readyExtra: () => ({ role: 'active' }),
    checks: {
      nats: async () => {
        if (!natsUp) throw new Error('down');
      },
    },
  });
  t.teardown(() => server.close());
  const base = `http://127.0.0.1:${server.port}`;
  t.equal((await fetch(`${base}/healthz`)).status, 200);
  const ok = await fetch(`${base}/readyz`);
  t.equal(ok.status, 200);
  t.match(await ok.json(), { status: 'ready', role: 'active' });
  natsUp = false;
  const down = await fetch(`${base}/readyz`);
  t.equal(down.status, 503);
  t.match(await down.json(), { status: 'not_ready', checks: { nats: { ok: false, error: 'down' } } });
  t.match(await (await fetch(`${base}/metrics`)).text(), /hatch_nodejs_heap_size_total_bytes\{service="unit"\}/);
  const missing = await fetch(`${base}/nope`);
  t.equal(missing.status, 404);
  t.match(await missing.json(), { success: false, code: 'NOT_FOUND' });
});

t.test('onShutdown runs the stop sequence once and exits 0; a stuck stop exits 1 at the bound', async (t) => {
  const codes: number[] = [];
  let stops = 0;
  const off = onShutdown(
    async () => {
      stops++;
    },
    { log: silent, timeoutMs: 1000, exit: (c) => codes.push(c) },
  );
  process.emit('SIGTERM');
  process.emit('SIGINT');
  await new Promise((r) => setImmediate(r));
  off();
  t.equal(stops, 1, 'stop ran once for two signals');
  t.same(codes, [0]);

  const codes2: number[] = [];
  const off2 = onShutdown(() => new Promise(() => {}), { log: silent, timeoutMs: 50, exit: (c) => codes2.push(c) });
  process.emit('SIGTERM');
  const deadline = Date.now() + 2000;
  while (codes2.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  off2();
  t.same(codes2, [1], 'exit 1 when stopping exceeds its bound');
});

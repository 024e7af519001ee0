import net from 'node:net';
import os from 'node:os';
import t from 'tap';
import { spawnService } from '@hatch/testing';

t.test('main starts from the environment, logs its URL and public key, and exits 0 on SIGTERM', async (t) => {
  const svc = spawnService(t, 'provider-emulator', { EMULATOR_PORT: '0', EMULATOR_HOST: '127.0.0.1', LOG_LEVEL: 'info' });
  const ready = await svc.waitForLog((l) => l.msg === 'provider emulator ready');
  t.match(ready, { service: 'provider-emulator', url: /^http:\/\/127\.0\.0\.1:\d+$/, sendgridWebhookPublicKey: /^MFkw/ });
  t.notOk(svc.output().includes('emulator-auth-token-not-a-secret'), 'the auth token is not logged');
  const health = await fetch(`${ready.url as string}/healthz`);
  t.equal(health.status, 200);
  svc.signal('SIGTERM');
  t.equal(await svc.exited, 0);
  t.ok(svc.logs().some((l) => l.msg === 'stopped'));
});

t.test('main refuses a malformed setting with one line naming it and exit 1', async (t) => {
  const svc = spawnService(t, 'provider-emulator', { EMULATOR_PORT: '0', EMULATOR_FAULTS: '{"provider":"twilio","kind":"nope"}' });
  t.equal(await svc.exited, 1);
  t.match(svc.output(), /provider-emulator: config error: EMULATOR_FAULTS\[0\]: kind/);
});

t.test('main exits 1 with a clear log line when its port is taken', async (t) => {
  const first = spawnService(t, 'provider-emulator', { EMULATOR_PORT: '0', EMULATOR_HOST: '127.0.0.1' });
  const ready = await first.waitForLog((l) => l.msg === 'provider emulator ready');
  const second = spawnService(t, 'provider-emulator', { EMULATOR_PORT: String(ready.port), EMULATOR_HOST: '127.0.0.1' });
  t.equal(await second.exited, 1);
  t.ok(second.logs().some((l) => l.msg === 'provider emulator could not start' && l.level === 60));
  first.signal('SIGTERM');
  t.equal(await first.exited, 0);
});

t.test('by default main listens on 127.0.0.1 only: the emulator is never reachable from another machine', async (t) => {
  const svc = spawnService(t, 'provider-emulator', { EMULATOR_PORT: '0' }); // no EMULATOR_HOST
  const ready = await svc.waitForLog((l) => l.msg === 'provider emulator ready');
  t.match(ready.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.equal((await fetch(`${ready.url as string}/healthz`)).status, 200, 'reachable on loopback');
  // Every address of this machine that is not loopback: a connection there is refused.
  const outside = Object.values(os.networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && !a.internal && a.family === 'IPv4')
    .map((a) => a!.address);
  if (outside.length === 0) t.comment('this machine has no non-loopback IPv4 address; only the bound address was checked');
  for (const address of outside) {
    const outcome = await new Promise<string>((resolve) => {
      const s = net.connect({ host: address, port: ready.port as number });
      s.setTimeout(3000, () => {
        s.destroy();
        resolve('timeout');
      });
      s.once('connect', () => {
        s.destroy();
        resolve('connected');
      });
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    t.equal(outcome, 'ECONNREFUSED', `not listening on ${address}`);
  }
  svc.signal('SIGTERM');
  t.equal(await svc.exited, 0);
});

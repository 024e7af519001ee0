import t from 'tap';
import { createTestDb, freePort, spawnService, testNats, testNatsUrl } from '@hatch/testing';

t.test('started without HATCH_API_TOKEN the gateway prints one line naming it and exits 1', async (t) => {
  const p = spawnService(t, 'gateway', { DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/postgres' });
  t.equal(await p.exited, 1);
  t.same(p.output().trim().split('\n'), ['gateway: config error: HATCH_API_TOKEN: missing (must be a non-empty string)']);
});

t.test('PORT=abc is refused at start with one line naming PORT', async (t) => {
  const p = spawnService(t, 'gateway', { PORT: 'abc', HATCH_API_TOKEN: 'x'.repeat(32) });
  t.equal(await p.exited, 1);
  const lines = p.output().trim().split('\n');
  t.equal(lines.length, 1);
  t.match(lines[0], /^gateway: config error: PORT: must be an integer .*\(got "abc"\)$/);
});

t.test('the gateway starts, becomes ready, and exits 0 on SIGTERM', async (t) => {
  const db = await createTestDb(t);
  const nats = testNats(t);
  const port = await freePort();
  const p = spawnService(t, 'gateway', {
    DATABASE_URL: db.url,
    NATS_URL: testNatsUrl(),
    HATCH_NATS_PREFIX: nats.prefix,
    HATCH_API_TOKEN: 'x'.repeat(32),
    PORT: String(port),
    LOG_LEVEL: 'info',
  });
  await p.waitForLog((l) => l.msg === 'gateway ready');
  const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
  t.equal(ready.status, 200);
  p.signal('SIGTERM');
  t.equal(await p.exited, 0, 'exit 0');
  t.ok(
    p.logs().some((l) => l.msg === 'stopped'),
    'logged a clean stop',
  );
  t.notMatch(p.output(), /x{32}/, 'the token never appears in the logs');
  t.notMatch(p.output(), /HATCH_PASSWORD_SCRYPT_LOG2N/, "at OWASP's scrypt cost (the default) no warning about it");
});

t.test('started with HATCH_PASSWORD_SCRYPT_LOG2N below 17 the gateway starts and warns once that it is for tests', async (t) => {
  const db = await createTestDb(t);
  const nats = testNats(t);
  const p = spawnService(t, 'gateway', {
    DATABASE_URL: db.url,
    NATS_URL: testNatsUrl(),
    HATCH_NATS_PREFIX: nats.prefix,
    HATCH_API_TOKEN: 'x'.repeat(32),
    PORT: String(await freePort()),
    LOG_LEVEL: 'info',
    HATCH_PASSWORD_SCRYPT_LOG2N: '10',
  });
  await p.waitForLog((l) => l.msg === 'gateway ready');
  const warns = p.logs().filter((l) => String(l.msg).includes('HATCH_PASSWORD_SCRYPT_LOG2N'));
  t.equal(warns.length, 1, 'one line');
  t.equal(warns[0]?.level, 40, 'at warn');
  t.match(warns[0]?.msg, /for tests only/);
  p.signal('SIGTERM');
  t.equal(await p.exited, 0);
});

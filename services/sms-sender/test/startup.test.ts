import t from 'tap';
import { createTestDb, freePort, spawnService, testNats, testNatsUrl } from '@hatch/testing';

// The three workers share one process shell (packages/service runWorkerProcess); each is
// started for real here: config refusal, ready, health endpoints, clean SIGTERM.
const workers = [
  {
    service: 'sms-sender',
    env: {
      TWILIO_ACCOUNT_SID: `AC${'0'.repeat(32)}`,
      TWILIO_AUTH_TOKEN: 'tok',
      TWILIO_PHONE_NUMBER: '+15005550006',
      TWILIO_API_URL: 'http://127.0.0.1:1',
    },
  },
  {
    service: 'email-sender',
    env: { SENDGRID_API_KEY: 'SG.test', SENDGRID_FROM_EMAIL: 'hatch@example.com', SENDGRID_API_URL: 'http://127.0.0.1:1' },
  },
  { service: 'realtime-bridge', env: {} },
];

for (const w of workers) {
  t.test(`${w.service} starts, serves /healthz /readyz /metrics, and exits 0 on SIGTERM`, async (t) => {
    const db = await createTestDb(t);
    const nats = testNats(t);
    const port = await freePort();
    const p = spawnService(t, w.service, {
      DATABASE_URL: db.url,
      NATS_URL: testNatsUrl(),
      HATCH_NATS_PREFIX: nats.prefix,
      HEALTH_PORT: String(port),
      ...w.env,
    });
    await p.waitForLog((l) => l.msg === `${w.service} ready`);
    t.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    t.equal(ready.status, 200);
    t.match(await ready.json(), { status: 'ready', checks: { database: { ok: true }, nats: { ok: true } } });
    t.match(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), new RegExp(`service="${w.service}"`));
    p.signal('SIGTERM');
    t.equal(await p.exited, 0);
  });
}

t.test('a worker with a malformed setting prints one line per problem and exits 1', async (t) => {
  const p = spawnService(t, 'sms-sender', { HEALTH_PORT: 'abc', TWILIO_ACCOUNT_SID: 'nope' });
  t.equal(await p.exited, 1);
  const lines = p.output().trim().split('\n');
  t.ok(
    lines.every((l) => l.startsWith('sms-sender: config error: ')),
    lines.join('\n'),
  );
  t.ok(lines.some((l) => l.includes('HEALTH_PORT')));
  t.ok(lines.some((l) => l.includes('TWILIO_ACCOUNT_SID')));
  t.ok(lines.some((l) => l.includes('TWILIO_AUTH_TOKEN: missing')));
});

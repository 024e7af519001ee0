/**
 * Issue 14, "no secret in a log line", end to end: the gateway, both senders and the provider
 * emulator as real processes at LOG_LEVEL=debug, driven through a wrong token, tokens in query
 * strings, a login, an SMS and an email that go all the way through the emulator and back; then
 * every line any of them wrote is searched for the API token, the Twilio auth token and the
 * SendGrid API key.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { createTestDb, freePort, spawnService, testNats, testNatsUrl, waitForValue, type ServiceProcess } from '@hatch/testing';

const API_TOKEN = `hatch-${randomBytes(16).toString('hex')}`;
const WRONG_TOKEN = `wrong-${randomBytes(16).toString('hex')}`;
const TWILIO_AUTH_TOKEN = randomBytes(16).toString('hex'); // Twilio's shape: 32 hex digits
const SENDGRID_API_KEY = `SG.${randomBytes(16).toString('base64url').slice(0, 22)}.${randomBytes(32).toString('base64url').slice(0, 43)}`;
const TWILIO_ACCOUNT_SID = `AC${randomBytes(16).toString('hex')}`;
const FROM_NUMBER = '+15005550006';

t.test('the API token, the Twilio auth token and the SendGrid API key appear in no log line of any process, at debug level', async (t) => {
  const db = await createTestDb(t);
  const nats = testNats(t);
  const [gatewayPort, smsHealth, emailHealth] = [await freePort(), await freePort(), await freePort()];
  const gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
  const shared = { DATABASE_URL: db.url, NATS_URL: testNatsUrl(), HATCH_NATS_PREFIX: nats.prefix, LOG_LEVEL: 'debug' };

  const emulator = spawnService(t, 'provider-emulator', {
    LOG_LEVEL: 'debug',
    EMULATOR_PORT: '0',
    EMULATOR_TWILIO_ACCOUNT_SID: TWILIO_ACCOUNT_SID,
    EMULATOR_TWILIO_AUTH_TOKEN: TWILIO_AUTH_TOKEN,
    EMULATOR_TWILIO_PHONE_NUMBER: FROM_NUMBER,
    EMULATOR_TWILIO_INBOUND_URL: `${gatewayUrl}/webhooks/twilio/sms`,
    EMULATOR_SENDGRID_API_KEY: SENDGRID_API_KEY,
    EMULATOR_SENDGRID_WEBHOOK_URL: `${gatewayUrl}/webhooks/sendgrid/events`,
    EMULATOR_CALLBACK_DELAY_MS: '50',
  });
  const ready = await emulator.waitForLog((l) => l.msg === 'provider emulator ready');
  const emulatorUrl = ready.url as string;

  const gateway = spawnService(t, 'gateway', {
    ...shared,
    PORT: String(gatewayPort),
    PUBLIC_URL: gatewayUrl,
    HATCH_API_TOKEN: API_TOKEN,
    TWILIO_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN,
    TWILIO_PHONE_NUMBER: FROM_NUMBER,
    SENDGRID_FROM_EMAIL: 'hatch@example.com',
    SENDGRID_WEBHOOK_PUBLIC_KEY: ready.sendgridWebhookPublicKey as string,
  });
  const sms = spawnService(t, 'sms-sender', {
    ...shared,
    HEALTH_PORT: String(smsHealth),
    PUBLIC_URL: gatewayUrl,
    TWILIO_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN,
    TWILIO_PHONE_NUMBER: FROM_NUMBER,
    TWILIO_API_URL: emulatorUrl,
  });
  const email = spawnService(t, 'email-sender', {
    ...shared,
    HEALTH_PORT: String(emailHealth),
    SENDGRID_API_KEY,
    SENDGRID_FROM_EMAIL: 'hatch@example.com',
    SENDGRID_API_URL: emulatorUrl,
  });
  await Promise.all([
    gateway.waitForLog((l) => l.msg === 'gateway ready'),
    sms.waitForLog((l) => l.msg === 'sms-sender ready'),
    email.waitForLog((l) => l.msg === 'email-sender ready'),
  ]);

  const auth = { authorization: `Bearer ${API_TOKEN}` };
  const json = { 'content-type': 'application/json' };
  // a wrong token, in the header and in the cookie
  t.equal((await fetch(`${gatewayUrl}/api/conversations`, { headers: { authorization: `Bearer ${WRONG_TOKEN}` } })).status, 401);
  t.equal(
    (await fetch(`${gatewayUrl}/api/session`, { method: 'POST', headers: json, body: JSON.stringify({ token: WRONG_TOKEN }) })).status,
    401,
  );
  // the real token where it does not belong: in query strings (the request line is logged)
  await fetch(`${gatewayUrl}/api/conversations?token=${API_TOKEN}&limit=5`);
  await fetch(`${gatewayUrl}/api/events?access_token=${API_TOKEN}`);
  await fetch(`${gatewayUrl}/?api_key=${SENDGRID_API_KEY}`);
  // a login, then a request with its cookie
  const login = await fetch(`${gatewayUrl}/api/session`, { method: 'POST', headers: json, body: JSON.stringify({ token: API_TOKEN }) });
  t.equal(login.status, 204, 'logged in');
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  t.equal((await fetch(`${gatewayUrl}/api/conversations`, { headers: { cookie } })).status, 200, 'the session cookie works');
  // an SMS and an email, through the workers, the emulator and its signed callbacks
  const sent = await fetch(`${gatewayUrl}/api/send_message`, {
    method: 'POST',
    headers: { ...auth, ...json },
    body: JSON.stringify({ to: '+14155550100', body: 'no secrets here' }),
  });
  t.equal(sent.status, 202, 'SMS accepted');
  const messageId = ((await sent.json()) as { message_id: string }).message_id;
  const mailed = await fetch(`${gatewayUrl}/api/send_email`, {
    method: 'POST',
    headers: { ...auth, ...json },
    body: JSON.stringify({ to_email: 'ann@example.com', subject: 'hello', body: 'no secrets here' }),
  });
  t.equal(mailed.status, 202, 'email accepted');
  const emailId = ((await mailed.json()) as { email_id: string }).email_id;
  const smsStatus = await waitForValue(
    async () => {
      const m = (await (await fetch(`${gatewayUrl}/api/messages/${messageId}`, { headers: auth })).json()) as {
        message: { status: string };
      };
      return m.message.status === 'delivered' ? m.message.status : undefined;
    },
    { timeoutMs: 30_000, message: 'the SMS delivered (sent by the worker, the callback verified)' },
  );
  const emailStatus = await waitForValue(
    async () => {
      const e = (await (await fetch(`${gatewayUrl}/api/emails/${emailId}`, { headers: auth })).json()) as { email: { status: string } };
      return e.email.status === 'delivered' ? e.email.status : undefined;
    },
    { timeoutMs: 30_000, message: 'the email delivered (sent by the worker, the signed events verified)' },
  );
  t.equal(smsStatus, 'delivered');
  t.equal(emailStatus, 'delivered');

  // Stopped cleanly, so every line is out.
  const all: Array<[string, ServiceProcess]> = [
    ['gateway', gateway],
    ['sms-sender', sms],
    ['email-sender', email],
    ['provider-emulator', emulator],
  ];
  for (const [, p] of all) p.signal('SIGTERM');
  for (const [name, p] of all) t.equal(await p.exited, 0, `${name} exited 0`);

  for (const [name, p] of all) {
    const out = p.output();
    t.ok(p.logs().length >= 3, `${name} logged (${p.logs().length} lines)`);
    for (const [what, secret] of [
      ['the API token', API_TOKEN],
      ['a wrong token', WRONG_TOKEN],
      ['the Twilio auth token', TWILIO_AUTH_TOKEN],
      ['the SendGrid API key', SENDGRID_API_KEY],
      ['the Basic credentials', Buffer.from(`${TWILIO_ACCOUNT_SID}:${TWILIO_AUTH_TOKEN}`).toString('base64')],
    ]) {
      t.notOk(out.includes(secret as string), `${name}: ${what} is in no log line`);
    }
  }
  // The request lines were logged (so the check above looked at them), with the token taken out.
  const urls = gateway
    .logs()
    .map((l) => (l.req as { url?: string } | undefined)?.url)
    .filter((u): u is string => typeof u === 'string');
  t.ok(urls.includes('/api/conversations?token=[redacted]&limit=5'), 'the query-string token is redacted, the rest of the URL kept');
  t.ok(urls.includes('/api/events?access_token=[redacted]'));
  t.ok(
    sms.logs().some((l) => l.msg === 'sms sent'),
    'the SMS went through the sms-sender',
  );
});

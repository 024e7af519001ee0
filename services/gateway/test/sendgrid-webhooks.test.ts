import t from 'tap';
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { testGateway } from './helpers.js';
import { rawRequest } from './raw-http.js';
import { parseGatewayConfig } from '../src/config.js';

type Gw = Awaited<ReturnType<typeof testGateway>>;

// SendGrid's Signed Event Webhook: ECDSA P-256 over timestamp + raw body; the key as SendGrid
// shows it (base64 DER SubjectPublicKeyInfo).
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const PUBLIC_KEY = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;

function post(gw: Gw, events: unknown[], opts: { key?: typeof privateKey | null; ageS?: number; tamper?: boolean } = {}) {
  const body = JSON.stringify(events);
  const ts = String(Math.floor(Date.now() / 1000) - (opts.ageS ?? 0));
  const key = opts.key === undefined ? privateKey : opts.key;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key) {
    headers['x-twilio-email-event-webhook-signature'] = sign('sha256', Buffer.from(ts + body), key).toString('base64');
    headers['x-twilio-email-event-webhook-timestamp'] = ts;
  }
  return gw.app.inject({
    method: 'POST',
    url: '/webhooks/sendgrid/events',
    headers,
    payload: opts.tamper ? body.replace('delivered', 'bounce') : body,
  });
}

async function sentEmail(gw: Gw, messageId: string | null = null) {
  const r = await gw.app.inject({
    method: 'POST',
    url: '/api/send_email',
    headers: gw.auth,
    payload: { to_email: ['ann@example.com', 'bob@example.com'], subject: 's', body: 'b' },
  });
  const id = r.json().email_id as string;
  await gw.db.db.updateTable('emails').set({ status: 'sent', provider_message_id: messageId }).where('id', '=', id).execute();
  return id;
}

const ev = (event: string, extra: Record<string, unknown> = {}) => ({
  email: 'ann@example.com',
  timestamp: Math.floor(Date.now() / 1000),
  event,
  sg_event_id: randomUUID(),
  sg_message_id: 'unknownprefix.filter-1',
  ...extra,
});

async function email(gw: Gw, id: string) {
  return gw.db.db.selectFrom('emails').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}
async function timeline(gw: Gw, id: string) {
  return (await gw.app.inject({ method: 'GET', url: `/api/emails/${id}`, headers: gw.auth })).json().timeline as Array<{
    status: string;
    source: string;
    provider_code: string | null;
  }>;
}

t.test('signed events move the status forward; opens and clicks are timeline entries only', async (t) => {
  const gw = await testGateway(t, { SENDGRID_WEBHOOK_PUBLIC_KEY: PUBLIC_KEY });
  const id = await sentEmail(gw);
  const res = await post(gw, [
    ev('processed', { email_id: id, sg_message_id: 'XMSGID123.filterdrecv-1.0' }),
    ev('deferred', { email_id: id }),
    ev('delivered', { email_id: id }),
  ]);
  t.equal(res.statusCode, 204);
  t.match(await email(gw, id), { status: 'delivered', provider_message_id: 'XMSGID123' });
  t.equal((await post(gw, [ev('open', { email_id: id }), ev('click', { email_id: id, url: 'https://example.com/x' })])).statusCode, 204);
  t.equal((await email(gw, id)).status, 'delivered', 'engagement does not change the status');
  const tl = await timeline(gw, id);
  t.same(
    tl.map((e) => e.status),
    ['queued', 'sent', 'deferred', 'delivered', 'open', 'click'],
  );
  t.ok(tl.slice(1).every((e) => e.source === 'sendgrid_event'));
});

t.test('events without our custom arg are matched by the sg_message_id prefix (X-Message-Id); a bounce records its code', async (t) => {
  const gw = await testGateway(t, { SENDGRID_WEBHOOK_PUBLIC_KEY: PUBLIC_KEY });
  const id = await sentEmail(gw, 'PREFIXabc');
  const res = await post(gw, [
    ev('bounce', { sg_message_id: 'PREFIXabc.filterdrecv-9.1', type: 'bounce', status: '5.1.1', reason: '550 no such user' }),
  ]);
  t.equal(res.statusCode, 204);
  t.match(await email(gw, id), { status: 'bounced', error_code: '5.1.1', error_message: '550 no such user' });
});

t.test('out of order: delivered then a late processed stays delivered; a replayed sg_event_id is stored once (T14)', async (t) => {
  const gw = await testGateway(t, { SENDGRID_WEBHOOK_PUBLIC_KEY: PUBLIC_KEY });
  const id = await sentEmail(gw);
  const delivered = ev('delivered', { email_id: id });
  t.equal((await post(gw, [delivered])).statusCode, 204);
  t.equal((await post(gw, [ev('processed', { email_id: id })])).statusCode, 204);
  t.equal((await post(gw, [delivered])).statusCode, 204, 'a replay is still 204');
  t.equal((await post(gw, [delivered, delivered])).statusCode, 204);
  t.equal((await email(gw, id)).status, 'delivered');
  t.same(
    (await timeline(gw, id)).map((e) => e.status),
    ['queued', 'delivered', 'sent'],
    'the replayed event is on the timeline once',
  );
});

t.test('forged, tampered, stale and unsigned batches are 403 and change nothing; a metric counts them (T14)', async (t) => {
  const gw = await testGateway(t, { SENDGRID_WEBHOOK_PUBLIC_KEY: PUBLIC_KEY });
  const id = await sentEmail(gw);
  const events = [ev('delivered', { email_id: id })];
  t.equal((await post(gw, events, { key: other })).statusCode, 403, 'signed with another key');
  t.equal((await post(gw, events, { tamper: true })).statusCode, 403, 'body changed after signing');
  t.equal((await post(gw, events, { ageS: 11 * 60 })).statusCode, 403, 'timestamp 11 minutes old');
  t.equal((await post(gw, events, { key: null })).statusCode, 403, 'no signature headers');
  const garbage = await gw.app.inject({
    method: 'POST',
    url: '/webhooks/sendgrid/events',
    headers: {
      'content-type': 'application/json',
      'x-twilio-email-event-webhook-signature': 'not-base64-der',
      'x-twilio-email-event-webhook-timestamp': String(Math.floor(Date.now() / 1000)),
    },
    payload: JSON.stringify(events),
  });
  t.equal(garbage.statusCode, 403, 'malformed signature');
  t.equal((await email(gw, id)).status, 'sent', 'no change');
  t.same(
    (await timeline(gw, id)).map((e) => e.status),
    ['queued'],
  );
  const metrics = (await gw.app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(metrics, /hatch_webhook_rejected_total\{[^}]*provider="sendgrid"[^}]*\} 5/);
  t.equal((await post(gw, events)).statusCode, 204, 'the same batch properly signed passes');
  t.equal((await email(gw, id)).status, 'delivered');
});

t.test(
  'without SENDGRID_WEBHOOK_PUBLIC_KEY every batch, signed or not, is 403 FORBIDDEN over a real socket and changes nothing (issue 14)',
  async (t) => {
    const gw = await testGateway(t);
    const id = await sentEmail(gw);
    await gw.app.listen({ port: 0, host: '127.0.0.1' });
    const port = (gw.app.server.address() as AddressInfo).port;
    const body = JSON.stringify([ev('dropped', { email_id: id, reason: 'Bounced Address' })]);
    const ts = String(Math.floor(Date.now() / 1000));
    const signed = {
      'x-twilio-email-event-webhook-signature': sign('sha256', Buffer.from(ts + body), privateKey).toString('base64'),
      'x-twilio-email-event-webhook-timestamp': ts,
    };
    for (const [name, headers] of [
      ['unsigned', {}],
      ['signed', signed],
    ] as const) {
      const res = await rawRequest(port, {
        method: 'POST',
        target: '/webhooks/sendgrid/events',
        headers: { 'content-type': 'application/json', ...headers },
        body,
      });
      t.equal(res.status, 403, `${name}: 403`);
      t.match(JSON.parse(res.body), { success: false, code: 'FORBIDDEN', error: String }, `${name}: contract error body`);
    }
    t.match(await email(gw, id), { status: 'sent', error_message: null }, 'no change');
    t.same(
      (await timeline(gw, id)).map((e) => e.status),
      ['queued'],
    );
    t.match(
      (await gw.app.inject({ method: 'GET', url: '/metrics' })).body,
      /hatch_webhook_rejected_total\{[^}]*provider="sendgrid"[^}]*\} 2/,
      'counted',
    );
  },
);

t.test(
  'SENDGRID_WEBHOOK_ALLOW_UNSIGNED=true without a key accepts unsigned batches (development); non-array bodies are 400; an unknown email is ignored',
  async (t) => {
    const gw = await testGateway(t, { SENDGRID_WEBHOOK_ALLOW_UNSIGNED: 'true' });
    const id = await sentEmail(gw);
    t.equal((await post(gw, [ev('dropped', { email_id: id, reason: 'Bounced Address' })], { key: null })).statusCode, 204);
    t.match(await email(gw, id), { status: 'dropped', error_message: 'Bounced Address' });
    const bad = await gw.app.inject({
      method: 'POST',
      url: '/webhooks/sendgrid/events',
      headers: { 'content-type': 'application/json' },
      payload: '{"event":"x"}',
    });
    t.equal(bad.statusCode, 400);
    t.equal(
      (await post(gw, [ev('delivered', { email_id: randomUUID() })], { key: null })).statusCode,
      204,
      'an unknown email is ignored, not an error',
    );
  },
);

t.test('with a key, SENDGRID_WEBHOOK_ALLOW_UNSIGNED=true changes nothing: an unsigned batch is still 403', async (t) => {
  const gw = await testGateway(t, { SENDGRID_WEBHOOK_PUBLIC_KEY: PUBLIC_KEY, SENDGRID_WEBHOOK_ALLOW_UNSIGNED: 'true' });
  const id = await sentEmail(gw);
  t.equal((await post(gw, [ev('delivered', { email_id: id })], { key: null })).statusCode, 403);
  t.equal((await email(gw, id)).status, 'sent');
  t.equal((await post(gw, [ev('delivered', { email_id: id })])).statusCode, 204, 'signed passes');
});

t.test(
  'SENDGRID_WEBHOOK_PUBLIC_KEY is taken as SendGrid shows it (base64 DER) or as PEM; anything else is a config error naming it',
  async (t) => {
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    for (const [name, value] of [
      ['PEM', pem],
      ['PEM on one line with \\n', pem.replace(/\n/g, '\\n')],
    ]) {
      const gw = await testGateway(t, { SENDGRID_WEBHOOK_PUBLIC_KEY: value as string });
      const id = await sentEmail(gw);
      t.equal((await post(gw, [ev('delivered', { email_id: id })])).statusCode, 204, `${name}: a signed batch passes`);
    }
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' })
      .publicKey.export({ type: 'spki', format: 'der' })
      .toString('base64');
    for (const bad of ['not-a-key', rsa, p384, PUBLIC_KEY.slice(0, 40)]) {
      let err: unknown;
      try {
        parseGatewayConfig({ DATABASE_URL: 'postgres://localhost/x', HATCH_API_TOKEN: 'x'.repeat(32), SENDGRID_WEBHOOK_PUBLIC_KEY: bad });
      } catch (e) {
        err = e;
      }
      t.match(
        err,
        { problems: [/^SENDGRID_WEBHOOK_PUBLIC_KEY: must be the EC P-256/] },
        `${bad.slice(0, 12)}…: a config error naming the setting`,
      );
    }
  },
);

t.test(
  'signed events named like Object.prototype members (constructor, toString, __proto__) are timeline entries, never a 500',
  async (t) => {
    const gw = await testGateway(t, { SENDGRID_WEBHOOK_PUBLIC_KEY: PUBLIC_KEY });
    const id = await sentEmail(gw);
    const res = await post(
      gw,
      ['constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf'].map((name) => ev(name, { email_id: id })),
    );
    t.equal(res.statusCode, 204, res.body);
    t.equal((await email(gw, id)).status, 'sent', 'no status change');
    t.same(
      (await timeline(gw, id)).map((e) => e.status),
      ['queued', 'constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf'],
    );
  },
);

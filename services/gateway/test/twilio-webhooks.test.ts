import t from 'tap';
import twilio from 'twilio';
import { testGateway } from './helpers.js';

const AUTH_TOKEN = 'twilio-webhook-token';
const PUBLIC = 'https://hatch.example.test';
const env = { TWILIO_PHONE_NUMBER: '+15005550006', TWILIO_AUTH_TOKEN: AUTH_TOKEN, PUBLIC_URL: PUBLIC };

type App = Awaited<ReturnType<typeof testGateway>>['app'];

function post(
  app: App,
  path: string,
  params: Record<string, string>,
  opts: { sign?: string | false; signUrl?: string; headers?: Record<string, string> } = {},
) {
  const signature =
    opts.sign === false
      ? undefined
      : (opts.sign ?? twilio.getExpectedTwilioSignature(AUTH_TOKEN, opts.signUrl ?? `${PUBLIC}${path}`, params));
  return app.inject({
    method: 'POST',
    url: path,
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(signature ? { 'x-twilio-signature': signature } : {}),
      ...(opts.headers ?? {}),
    },
    payload: new URLSearchParams(params).toString(),
  });
}

async function queuedSms(app: App, auth: Record<string, string>, db: Awaited<ReturnType<typeof testGateway>>['db']) {
  const r = await app.inject({ method: 'POST', url: '/api/send_message', headers: auth, payload: { to: '+15551234567', body: 'hello' } });
  const id = r.json().message_id as string;
  await db.db.updateTable('messages').set({ status: 'sending' }).where('id', '=', id).execute();
  return id;
}

const statusParams = (sid: string, status: string, extra: Record<string, string> = {}) => ({
  MessageSid: sid,
  SmsSid: sid,
  AccountSid: `AC${'1'.repeat(32)}`,
  From: '+15005550006',
  To: '+15551234567',
  MessageStatus: status,
  SmsStatus: status,
  ApiVersion: '2010-04-01',
  ...extra,
});

t.test('signed status callbacks move the status forward and add a timeline row each', async (t) => {
  const { app, auth, db } = await testGateway(t, env);
  const id = await queuedSms(app, auth, db);
  const path = `/webhooks/twilio/status?mid=${id}`;
  for (const s of ['queued', 'sending', 'sent', 'delivered'])
    t.equal((await post(app, path, statusParams('SM0001', s))).statusCode, 204, s);
  const got = (await app.inject({ method: 'GET', url: `/api/messages/${id}`, headers: auth })).json();
  t.equal(got.message.status, 'delivered');
  t.equal(got.message.provider_sid, 'SM0001');
  t.same(
    got.timeline.map((e: { status: string }) => e.status),
    ['queued', 'queued', 'sending', 'sent', 'delivered'],
  );
  t.ok(got.timeline.slice(1).every((e: { source: string }) => e.source === 'twilio_callback'));
});

t.test('"delivered" before "sent" stays delivered; duplicates are harmless (T14)', async (t) => {
  const { app, auth, db } = await testGateway(t, env);
  const id = await queuedSms(app, auth, db);
  const path = `/webhooks/twilio/status?mid=${id}`;
  await post(app, path, statusParams('SM0002', 'delivered'));
  await post(app, path, statusParams('SM0002', 'sent'));
  await post(app, path, statusParams('SM0002', 'sent'), { headers: { 'i-twilio-idempotency-token': 'tok-1' } });
  await post(app, path, statusParams('SM0002', 'sent'), { headers: { 'i-twilio-idempotency-token': 'tok-1' } });
  const m = await db.db.selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  t.equal(m.status, 'delivered');
  const events = await db.db.selectFrom('status_events').select('status').where('message_id', '=', id).execute();
  t.equal(events.length, 4, 'queued + delivered + sent + one of the two token-deduplicated replays');
});

t.test('a callback found by SID alone (no mid) also applies; failed carries the error code', async (t) => {
  const { app, auth, db } = await testGateway(t, env);
  const id = await queuedSms(app, auth, db);
  await db.db.updateTable('messages').set({ provider_sid: 'SM0003' }).where('id', '=', id).execute();
  t.equal((await post(app, '/webhooks/twilio/status', statusParams('SM0003', 'undelivered', { ErrorCode: '30003' }))).statusCode, 204);
  const m = await db.db.selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  t.match(m, { status: 'undelivered', error_code: '30003' });
});

t.test('bad, missing, tampered or wrong-scheme signatures are 403 and change nothing; an extra signed param passes (T14)', async (t) => {
  const { app, auth, db, config } = await testGateway(t, env);
  t.equal(config.PUBLIC_URL, PUBLIC);
  const id = await queuedSms(app, auth, db);
  const path = `/webhooks/twilio/status?mid=${id}`;
  const params = statusParams('SM0004', 'delivered');
  const good = twilio.getExpectedTwilioSignature(AUTH_TOKEN, `${PUBLIC}${path}`, params);
  const cases: Array<[string, ReturnType<typeof post>]> = [
    ['missing', post(app, path, params, { sign: false })],
    ['garbage', post(app, path, params, { sign: 'bm9wZQ==' })],
    [
      'tampered param',
      app.inject({
        method: 'POST',
        url: path,
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': good },
        payload: new URLSearchParams({ ...params, MessageStatus: 'failed' }).toString(),
      }),
    ],
    ['signed for http://', post(app, path, params, { signUrl: `http://hatch.example.test${path}` })],
    ['other auth token', post(app, path, params, { sign: twilio.getExpectedTwilioSignature('other-token', `${PUBLIC}${path}`, params) })],
  ];
  for (const [name, p] of cases) {
    const res = await p;
    t.equal(res.statusCode, 403, name);
    t.match(res.json(), { success: false, code: 'FORBIDDEN' });
  }
  const m = await db.db.selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  t.equal(m.status, 'sending', 'no state change');
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(metrics, /hatch_webhook_rejected_total\{provider="twilio",service="gateway"\} 5/);
  t.equal((await post(app, path, { ...params, SomeNewTwilioField: 'x' })).statusCode, 204, 'unknown extra param, correctly signed');
});

t.test('inbound SMS is stored once per MessageSid and joins the conversation of our replies', async (t) => {
  const { app, auth, db } = await testGateway(t, env);
  const sent = await app.inject({ method: 'POST', url: '/api/send_message', headers: auth, payload: { to: '+15551234567', body: 'hi' } });
  const params = {
    MessageSid: 'SMin1',
    SmsMessageSid: 'SMin1',
    AccountSid: `AC${'1'.repeat(32)}`,
    From: '+15551234567',
    To: '+15005550006',
    Body: 'hello back',
    NumMedia: '0',
    NumSegments: '1',
  };
  const first = await post(app, '/webhooks/twilio/sms', params);
  t.equal(first.statusCode, 200);
  t.match(first.headers['content-type'], /text\/xml/);
  t.match(first.body, /<Response\/>/);
  const replay = await post(app, '/webhooks/twilio/sms', params);
  t.equal(replay.statusCode, 200, 'replay answers 200');
  const inbound = await db.db.selectFrom('messages').selectAll().where('direction', '=', 'inbound').execute();
  t.equal(inbound.length, 1, 'stored once');
  t.match(inbound[0], {
    status: 'received',
    from_contact: '+15551234567',
    to_contact: '+15005550006',
    body: 'hello back',
    provider_sid: 'SMin1',
    conversation_id: sent.json().conversation_id,
  });
});

t.test('STOP adds the sender to the opt-out list (next send 422), START removes it; HELP is a message', async (t) => {
  const { app, auth, db } = await testGateway(t, env);
  const inbound = (sid: string, body: string) =>
    post(app, '/webhooks/twilio/sms', { MessageSid: sid, From: '+15557654321', To: '+15005550006', Body: body });
  await inbound('SMs1', ' stop ');
  const refused = await app.inject({ method: 'POST', url: '/api/send_message', headers: auth, payload: { to: '+15557654321', body: 'x' } });
  t.equal(refused.statusCode, 422);
  t.match(refused.json(), { code: 'RECIPIENT_OPTED_OUT' });
  await inbound('SMs2', 'HELP');
  t.equal(
    (await app.inject({ method: 'POST', url: '/api/send_message', headers: auth, payload: { to: '+15557654321', body: 'x' } })).statusCode,
    422,
    'HELP changes nothing',
  );
  await inbound('SMs3', 'START');
  t.equal(
    (await app.inject({ method: 'POST', url: '/api/send_message', headers: auth, payload: { to: '+15557654321', body: 'x' } })).statusCode,
    202,
  );
  const stored = await db.db.selectFrom('messages').select('body').where('direction', '=', 'inbound').orderBy('created_at').execute();
  t.same(
    stored.map((r) => r.body),
    [' stop ', 'HELP', 'START'],
    'keywords are stored like any message',
  );
});

t.test('webhooks are form-encoded only where Twilio posts; the JSON API still refuses forms', async (t) => {
  const { app, auth } = await testGateway(t, env);
  const res = await app.inject({
    method: 'POST',
    url: '/api/send_message',
    headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded' },
    payload: 'to=Bob&body=x',
  });
  t.equal(res.statusCode, 415);
});

t.test('concurrent status callbacks share statements (group commit): each answered after its write, every one applied', async (t) => {
  const { app, auth, db, registry } = await testGateway(t, env);
  const N = 24;
  const ids: string[] = [];
  for (let i = 0; i < N; i++) ids.push(await queuedSms(app, auth, db));
  const answers = await Promise.all(
    ids.map((id, i) =>
      post(app, `/webhooks/twilio/status?mid=${id}`, statusParams(`SMG${i}`, 'delivered'), {
        headers: { 'i-twilio-idempotency-token': `grouped-${i}` },
      }),
    ),
  );
  t.same(
    answers.map((a) => a.statusCode),
    Array(N).fill(204),
  );
  const rows = await db.db.selectFrom('messages').select(['status', 'provider_sid']).where('id', 'in', ids).execute();
  t.ok(
    rows.every((r) => r.status === 'delivered' && r.provider_sid?.startsWith('SMG')),
    'every callback applied and committed when answered',
  );
  const metric = (await registry.getSingleMetric('hatch_write_group_size')?.get())?.values ?? [];
  const of = (name: string) =>
    metric.find((v) => (v as { metricName?: string }).metricName === name && v.labels.writes === 'message_status')?.value ?? 0;
  t.equal(of('hatch_write_group_size_sum'), N, 'every callback went through the grouped writes');
  t.ok(of('hatch_write_group_size_count') < N, `fewer statements than callbacks: ${of('hatch_write_group_size_count')} for ${N}`);
});

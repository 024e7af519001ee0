/**
 * Authorization is decided by the route that runs (issue 14, SECURITY.md): a real listening
 * gateway, raw sockets, the request target sent as-is. Every spelling of an API target an
 * attacker may try, with every method, is either 401 or not the API: no API data, no event
 * stream, nothing stored or sent. On the old gateway `GET /%61pi/conversations` was 200 with
 * every conversation and `POST /%61pi/send_message` stored and queued an SMS.
 */
import t from 'tap';
import type { AddressInfo } from 'node:net';
import { testGateway, TEST_TOKEN } from './helpers.js';
import { rawRequest, type RawResponse } from './raw-http.js';

const MARKER = 'secret-marker-7f3a';

/** Spellings of `/api/<rest>` that a router may normalise back to the API route. */
function variants(rest: string): string[] {
  const [first = '', ...others] = rest.split('/');
  const tail = others.length ? `/${others.join('/')}` : '';
  const enc = (s: string, i = 0) => `${s.slice(0, i)}%${s.charCodeAt(i).toString(16)}${s.slice(i + 1)}`;
  const encUpper = (s: string, i = 0) => `${s.slice(0, i)}%${s.charCodeAt(i).toString(16).toUpperCase()}${s.slice(i + 1)}`;
  const plain = `/api/${rest}`;
  return [
    `/${enc('api')}/${rest}`,
    `/${enc('api', 1)}/${rest}`,
    `/${enc('api', 2)}/${rest}`,
    `/%61%70%69/${rest}`,
    `/api/${enc(first)}${tail}`,
    `/api/${encUpper(first, first.length - 1)}${tail}`,
    `/%41PI/${rest}`,
    `/api%2f${rest}`,
    `/api%2F${rest}`,
    `%2Fapi%2F${rest}`,
    `/api/${rest.replaceAll('/', '%2F')}`,
    `http://anything${plain}`,
    `http://127.0.0.1${plain}`,
    `https://evil.example:8443${plain}`,
    `HTTP://X${plain}`,
    `http://anything/%61pi/${rest}`,
    `//api/${rest}`,
    `/api//${rest}`,
    `///api/${rest}`,
    `/./api/${rest}`,
    `/api/./${rest}`,
    `/x/../api/${rest}`,
    `/x/%2e%2e/api/${rest}`,
    `/%2e/api/${rest}`,
    `/api;x=1/${rest}`,
    `/api/${first};x=1${tail}`,
    `${plain};`,
    `/API/${rest}`,
    `/Api/${rest}`,
    `/api/${first.toUpperCase()}${tail}`,
    `${plain}/`,
    `${plain}//`,
    `${plain}%20`,
    `${plain}%00`,
    `${plain}%09`,
    `${plain}?x=/healthz`,
    `${plain}#frag`,
    `/api\\${rest}`,
    `\\api\\${rest}`,
    `/webhooks/../api/${rest}`,
    `/assets/..%2f..%2fapi/${rest}`,
    `*`,
  ];
}

const METHODS = ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH', 'DELETE'];

/** What a refused or not-the-API answer may look like; returns a reason when it is the API answering. */
function leak(res: RawResponse): string | undefined {
  if (res.status === 0) return 'no answer: a stream held open';
  if (res.status >= 500) return `a ${res.status}`;
  if (res.status === 401) {
    if (res.body && !/"code":"UNAUTHORIZED"/.test(res.body)) return '401 not in the error shape';
    return undefined;
  }
  if (/text\/event-stream/i.test(res.headers['content-type'] ?? '')) return 'an event stream';
  if (res.body.includes(MARKER)) return 'API data in the body';
  if (/"openapi":|SwaggerUI|id="swagger-ui"/.test(res.body)) return 'the API document or its UI';
  if (res.status >= 200 && res.status < 300 && /json/i.test(res.headers['content-type'] ?? '')) return `a ${res.status} JSON answer`;
  if (res.status === 202 || res.status === 204) return `a ${res.status}`;
  return undefined;
}

t.test('every spelling of an API request target, with every method, is 401 or not the API, and changes nothing', async (t) => {
  const { app, db, bus, names, auth } = await testGateway(t, {
    TWILIO_PHONE_NUMBER: '+15005550006',
    HATCH_RATE_LIMIT_PER_MINUTE: '100000',
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as AddressInfo).port;
  const seeded = await app.inject({
    method: 'POST',
    url: '/api/send_message',
    headers: auth,
    payload: { to: `Contact ${MARKER}`, body: `body ${MARKER}` },
  });
  t.equal(seeded.statusCode, 202, 'seeded one chat message with the authenticated route');
  const { message_id: messageId, conversation_id: conversationId } = seeded.json<{ message_id: string; conversation_id: string }>();
  const jobsBefore = (await bus.jsm.streams.info(names.streams.jobs)).state.messages;

  const rests = [
    'conversations',
    'events',
    'send_message',
    'send_email',
    'emails',
    `messages/${messageId}`,
    `messages/${messageId}/retry`,
    `conversation/${conversationId}/messages`,
    'session',
    'openapi.json',
    'docs',
    // Swagger UI's files (joined: test/docs/references.test.ts would take it for a docs/ path)
    ['docs', 'static', 'swagger-ui-bundle.js'].join('/'),
    'nope/deeper',
  ];
  const body = JSON.stringify({ to: '+15551234567', body: `sms ${MARKER}`, to_email: 'a@example.com', subject: 's' });
  const found: string[] = [];
  let sent = 0;
  for (const rest of rests) {
    for (const target of [`/api/${rest}`, ...variants(rest)]) {
      for (const method of METHODS) {
        const withBody = method === 'POST' || method === 'PUT' || method === 'PATCH';
        const res = await rawRequest(port, {
          method,
          target,
          headers: withBody ? { 'content-type': 'application/json' } : {},
          body: withBody ? body : undefined,
        });
        sent++;
        const why = leak(res);
        if (why) found.push(`${method} ${target}: ${why} (${res.status})`);
      }
    }
  }
  t.ok(sent > 2500, `${sent} requests sent`);
  t.same(found, [], 'no request target reached the API without credentials');

  const messages = await db.db.selectFrom('messages').select('id').execute();
  t.same(
    messages.map((m) => m.id),
    [messageId],
    'nothing stored: only the seeded message',
  );
  t.same(await db.db.selectFrom('emails').select('id').execute(), [], 'no email stored');
  t.same(await db.db.selectFrom('outbox').select('id').execute(), [], 'no outbox row');
  t.equal((await bus.jsm.streams.info(names.streams.jobs)).state.messages, jobsBefore, 'no job published');

  // The same raw client with the token reaches the API: the table above is not vacuous.
  const ok = await rawRequest(port, { method: 'GET', target: '/%61pi/conversations', headers: { authorization: `Bearer ${TEST_TOKEN}` } });
  t.equal(ok.status, 200, 'an encoded target with the token is the API');
  t.match(ok.body, MARKER, 'and it has the data');
});

t.test('malformed Cookie and Authorization headers are 401 in the error shape, never a 5xx', async (t) => {
  // Each case comes from its own client address (through a trusted local proxy), so the
  // failed-authentication limit (edge-limits.test.ts) does not turn the later ones into 429s.
  const { app } = await testGateway(t, { HATCH_RATE_LIMIT_PER_MINUTE: '100000', HATCH_TRUST_PROXY: '127.0.0.1' });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as AddressInfo).port;
  const login = await rawRequest(port, {
    method: 'POST',
    target: '/api/session',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: TEST_TOKEN }),
  });
  t.equal(login.status, 204, 'signed in');
  const signed = decodeURIComponent(/hatch_session=([^;]+)/.exec(login.headers['set-cookie'] ?? '')?.[1] ?? '');
  const cases: Array<Record<string, string>> = [
    { cookie: 'hatch_session=%zz' },
    { cookie: 'hatch_session=%' },
    { cookie: 'hatch_session=%E0%A4%A' },
    { cookie: 'hatch_session=' },
    { cookie: 'hatch_session' },
    { cookie: '=;;;=;hatch_session==' },
    { cookie: 'hatch_session="v1.1"' },
    { cookie: `hatch_session=${'a'.repeat(6000)}` },
    { cookie: `hatch_session=${signed.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'))}` },
    { cookie: `hatch_session=${signed.slice(0, -1)}` },
    { cookie: 'hatch_session=v1.9999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
    { cookie: 'hatch_session=v1.9999999999' },
    { cookie: `hatch_session=${signed}A` },
    { cookie: `__proto__=x; constructor=y; hatch_session=%zz` },
    { authorization: '' },
    { authorization: 'Bearer' },
    { authorization: 'Bearer ' },
    { authorization: `Bearer ${TEST_TOKEN} extra` },
    { authorization: `Bearer  ${TEST_TOKEN}x` },
    { authorization: `Basic ${Buffer.from(`x:${TEST_TOKEN}`).toString('base64')}` },
    { authorization: `bearer%20${TEST_TOKEN}` },
    { authorization: `Bearer ${'x'.repeat(7000)}` },
    { authorization: 'Bearer \u00e9\u00e9' },
    { authorization: 'Bearer wrong', cookie: `hatch_session=${signed}` },
  ];
  let client = 0;
  for (const headers of cases) {
    for (const target of ['/api/conversations', '/api/events']) {
      client++;
      const res = await rawRequest(port, { method: 'GET', target, headers: { ...headers, 'x-forwarded-for': `198.51.100.${client}` } });
      const label = `${target} ${JSON.stringify(headers).slice(0, 80)}`;
      t.equal(res.status, 401, `${label}: 401`);
      t.match(JSON.parse(res.body || '{}'), { success: false, code: 'UNAUTHORIZED', error: String }, `${label}: error shape`);
    }
  }
  const good = await rawRequest(port, {
    method: 'GET',
    target: '/api/conversations',
    headers: { cookie: `other=%zz; hatch_session=${encodeURIComponent(signed)}` },
  });
  t.equal(good.status, 200, 'a valid signed cookie next to a malformed one still authenticates');
});

import t from 'tap';
import { testGateway, TEST_TOKEN } from './helpers.js';

t.test('GET /healthz answers 200 without auth', async (t) => {
  const { app } = await testGateway(t);
  const res = await app.inject({ method: 'GET', url: '/healthz' });
  t.equal(res.statusCode, 200);
  t.same(res.json(), { status: 'ok' });
});

t.test('GET /readyz is 200 when PostgreSQL and NATS answer', async (t) => {
  const { app } = await testGateway(t);
  const res = await app.inject({ method: 'GET', url: '/readyz' });
  t.equal(res.statusCode, 200);
  t.match(res.json(), { status: 'ready', checks: { database: { ok: true }, nats: { ok: true } } });
});

t.test('GET /metrics serves Prometheus text with hatch_ default metrics', async (t) => {
  const { app } = await testGateway(t);
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /text\/plain/);
  t.match(res.body, /^hatch_process_cpu_user_seconds_total/m);
  t.match(res.body, /service="gateway"/);
});

t.test('/api/* without credentials is 401 in the contract error format', async (t) => {
  const { app } = await testGateway(t);
  for (const headers of [
    {},
    { authorization: 'Bearer wrong-token' },
    { authorization: 'Basic abc' },
    { authorization: `Bearer ${TEST_TOKEN}x` },
  ]) {
    const res = await app.inject({ method: 'GET', url: '/api/conversations', headers });
    t.equal(res.statusCode, 401, JSON.stringify(headers));
    t.match(res.json(), { success: false, code: 'UNAUTHORIZED', error: String });
    t.equal(res.headers['www-authenticate'], 'Bearer');
  }
});

t.test('a valid token passes auth (unknown /api route is then a JSON 404)', async (t) => {
  const { app, auth } = await testGateway(t);
  const res = await app.inject({ method: 'GET', url: '/api/nope', headers: auth });
  t.equal(res.statusCode, 404);
  t.same(res.json(), { success: false, error: 'no route GET /api/nope', code: 'NOT_FOUND' });
});

t.test('unknown routes outside /api are a JSON 404', async (t) => {
  const { app } = await testGateway(t);
  const res = await app.inject({ method: 'POST', url: '/nowhere?x=1' });
  t.equal(res.statusCode, 404);
  t.match(res.json(), { success: false, code: 'NOT_FOUND' });
});

t.test('POST /api/session: a right token sets an HttpOnly SameSite=Strict cookie that authenticates', async (t) => {
  const { app } = await testGateway(t);
  const res = await app.inject({ method: 'POST', url: '/api/session', payload: { token: TEST_TOKEN } });
  t.equal(res.statusCode, 204);
  const cookie = String(res.headers['set-cookie']);
  t.match(cookie, /^hatch_session=[A-Za-z0-9_-]{43};/, 'a random id (the server keeps only its SHA-256)');
  const attributes = cookie
    .split(';')
    .slice(1)
    .map((a) => a.trim())
    .sort();
  t.same(
    attributes.map((a) => a.replace(/=\d+$/, '=N')),
    ['HttpOnly', 'Max-Age=N', 'Path=/', 'SameSite=Strict', 'Secure'],
    'HttpOnly, SameSite=Strict, Secure on https, path /, a max age',
  );
  const value = cookie.split(';')[0] as string;
  const ok = await app.inject({ method: 'GET', url: '/api/nope', headers: { cookie: value } });
  t.equal(ok.statusCode, 404, 'cookie accepted');
  const forged = await app.inject({
    method: 'GET',
    url: '/api/nope',
    headers: { cookie: value.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')) },
  });
  t.equal(forged.statusCode, 401, 'tampered cookie refused');
  const wrong = await app.inject({ method: 'POST', url: '/api/session', payload: { token: 'nope' } });
  t.equal(wrong.statusCode, 401);
  t.equal(wrong.headers['set-cookie'], undefined);
  const out = await app.inject({ method: 'DELETE', url: '/api/session', headers: { cookie: value } });
  t.equal(out.statusCode, 204);
  t.match(String(out.headers['set-cookie']), /Max-Age=0/);
});

t.test('bad input gets a 4xx in the contract format naming the field, never a 500', async (t) => {
  const { app } = await testGateway(t);
  const cases: Array<{ name: string; payload: string; headers?: Record<string, string>; status: number; code: string; field?: string }> = [
    { name: 'missing field', payload: '{}', status: 400, code: 'INVALID_REQUEST', field: 'body.token' },
    { name: 'wrong type', payload: '{"token": 5}', status: 400, code: 'INVALID_REQUEST', field: 'body.token' },
    { name: 'unknown field', payload: '{"token":"x","admin":true}', status: 400, code: 'INVALID_REQUEST', field: 'body.admin' },
    { name: 'malformed JSON', payload: '{"token":', status: 400, code: 'INVALID_REQUEST' },
    { name: '__proto__ key', payload: '{"token":"x","__proto__":{"admin":true}}', status: 400, code: 'INVALID_REQUEST' },
    {
      name: 'constructor.prototype key',
      payload: '{"token":"x","constructor":{"prototype":{"a":1}}}',
      status: 400,
      code: 'INVALID_REQUEST',
    },
    { name: 'text/plain', payload: 'token', headers: { 'content-type': 'text/plain' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
    {
      name: 'form body',
      payload: 'token=x',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
    },
    { name: '2 MiB body', payload: JSON.stringify({ token: 'x'.repeat(2 * 1024 * 1024) }), status: 413, code: 'PAYLOAD_TOO_LARGE' },
  ];
  for (const c of cases) {
    const res = await app.inject({
      method: 'POST',
      url: '/api/session',
      payload: c.payload,
      headers: { 'content-type': 'application/json', ...(c.headers ?? {}) },
    });
    t.equal(res.statusCode, c.status, `${c.name}: status`);
    const body = res.json();
    t.equal(body.success, false, `${c.name}: success false`);
    t.equal(body.code, c.code, `${c.name}: code`);
    t.type(body.error, 'string');
    t.notMatch(res.body, /at .*\.(ts|js):\d+/, `${c.name}: no stack trace`);
    if (c.field)
      t.ok(
        (body.details as Array<{ field: string }>).some((d) => d.field === c.field),
        `${c.name}: names ${c.field}`,
      );
  }
});

import t from 'tap';
import { testGateway } from './helpers.js';

// T11 on the route that sends: every abusive request is a 4xx in the contract's error format,
// no stack trace, and leaves no row in PostgreSQL and no job on JetStream.

t.test('abusive POST /api/send_message requests are refused in the contract format and write nothing, publish nothing (T11)', async (t) => {
  const { app, auth, db, bus, names } = await testGateway(t, { TWILIO_PHONE_NUMBER: '+15005550006' });
  const json = { ...auth, 'content-type': 'application/json' };
  const cases: Array<{ name: string; payload: string; headers: Record<string, string>; status: number; code: string }> = [
    { name: 'malformed JSON', payload: '{"to": "+15551234567", "body": "x"', headers: json, status: 400, code: 'INVALID_REQUEST' },
    { name: 'JSON that is not an object', payload: '["+15551234567", "x"]', headers: json, status: 400, code: 'INVALID_REQUEST' },
    {
      name: '__proto__ key',
      payload: '{"to": "+15551234567", "body": "x", "__proto__": {"status": "sent"}}',
      headers: json,
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      name: 'constructor.prototype key',
      payload: '{"to": "Bob", "body": "x", "constructor": {"prototype": {"status": "sent"}}}',
      headers: json,
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      name: '2 MiB body',
      payload: JSON.stringify({ to: '+15551234567', body: 'x'.repeat(2 * 1024 * 1024) }),
      headers: json,
      status: 413,
      code: 'PAYLOAD_TOO_LARGE',
    },
    {
      name: 'text/plain',
      payload: '{"to": "+15551234567", "body": "x"}',
      headers: { ...auth, 'content-type': 'text/plain' },
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
    },
    {
      name: 'no content type',
      payload: '{"to": "+15551234567", "body": "x"}',
      headers: { ...auth, 'content-type': '' },
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
    },
    { name: 'empty body', payload: '', headers: json, status: 400, code: 'INVALID_REQUEST' },
    {
      name: 'CRLF header injection in the body',
      payload: JSON.stringify({ to: 'Bob', body: 'hi\r\nBcc: x@y.z' }),
      headers: json,
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      name: 'CRLF in the recipient',
      payload: JSON.stringify({ to: '+15551234567\r\n', body: 'x' }),
      headers: json,
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      name: 'many recipients in one field',
      payload: JSON.stringify({ to: Array.from({ length: 1000 }, (_, i) => `+1555${String(1_000_000 + i)}`), body: 'x' }),
      headers: json,
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      name: 'status smuggled in',
      payload: JSON.stringify({ to: 'Bob', body: 'x', status: 'delivered' }),
      headers: json,
      status: 400,
      code: 'INVALID_REQUEST',
    },
    {
      name: 'no credentials',
      payload: '{"to": "Bob", "body": "x"}',
      headers: { 'content-type': 'application/json' },
      status: 401,
      code: 'UNAUTHORIZED',
    },
  ];
  for (const c of cases) {
    const res = await app.inject({ method: 'POST', url: '/api/send_message', payload: c.payload, headers: c.headers });
    t.equal(res.statusCode, c.status, `${c.name}: ${c.status}`);
    const body = res.json();
    t.match(body, { success: false, code: c.code, error: String }, `${c.name}: contract error body`);
    t.notMatch(res.body, /\bat .+:\d+:\d+|node_modules|\.ts\b/, `${c.name}: no stack trace`);
  }
  const rows = await db.db.selectFrom('messages').select('id').execute();
  t.same(rows, [], 'no message rows');
  t.same(await db.db.selectFrom('outbox').select('id').execute(), [], 'no outbox rows');
  t.equal((await bus.jsm.streams.info(names.streams.jobs)).state.messages, 0, 'no job published');
  const ok = await app.inject({
    method: 'POST',
    url: '/api/send_message',
    headers: auth,
    payload: { to: '+15551234567', body: 'still works' },
  });
  t.equal(ok.statusCode, 202, 'a good request right after is accepted');
});

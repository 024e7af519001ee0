import { PassThrough } from 'node:stream';
import t from 'tap';
import { configSecrets, createLogger, createScrubber } from '../src/index.js';

function capture() {
  const stream = new PassThrough();
  const lines: Record<string, unknown>[] = [];
  stream.on('data', (chunk: Buffer) => {
    for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
  });
  return { stream, lines };
}

t.test('lines are JSON with the service base field and a component per child', async (t) => {
  const { stream, lines } = capture();
  const log = createLogger({ service: 'gateway', destination: stream });
  log.child({ component: 'http' }).info({ messageId: 'm1' }, 'hello');
  await new Promise((r) => setImmediate(r));
  t.equal(lines.length, 1);
  t.match(lines[0], { service: 'gateway', component: 'http', messageId: 'm1', msg: 'hello', level: 30 });
});

t.test('authorization, cookies, tokens and provider keys are redacted', async (t) => {
  const { stream, lines } = capture();
  const log = createLogger({ service: 's', destination: stream });
  log.info(
    {
      req: { headers: { authorization: 'Bearer secret-1', cookie: 'hatch_session=secret-2' } },
      config: { HATCH_API_TOKEN: 'secret-3', TWILIO_AUTH_TOKEN: 'secret-4', SENDGRID_API_KEY: 'secret-5' },
      token: 'secret-6',
    },
    'x',
  );
  await new Promise((r) => setImmediate(r));
  const text = JSON.stringify(lines[0]);
  for (let i = 1; i <= 6; i++) t.notMatch(text, `secret-${i}`, `secret-${i} is not logged`);
  t.match(text, /\[redacted\]/);
});

t.test('level filters lower lines', async (t) => {
  const { stream, lines } = capture();
  const log = createLogger({ service: 's', level: 'warn', destination: stream });
  log.info('hidden');
  log.warn('shown');
  await new Promise((r) => setImmediate(r));
  t.same(
    lines.map((l) => l.msg),
    ['shown'],
  );
});

t.test('secrets are redacted at any depth, whatever holds them: objects, arrays, nested errors', async (t) => {
  const { stream, lines } = capture();
  const log = createLogger({ service: 's', destination: stream });
  const err = Object.assign(new Error('request failed'), {
    status: 401,
    config: {
      headers: { Authorization: 'Basic secret-01', 'User-Agent': 'twilio-node' },
      auth: { username: 'AC1', password: 'secret-02' },
    },
    response: { headers: { 'set-cookie': ['sid=secret-03; HttpOnly', 'x=secret-04'] }, body: { errors: [{ message: 'bad' }] } },
  });
  log.child({ component: 'c', apiKey: 'secret-05' }).warn(
    {
      err,
      a: {
        b: {
          c: {
            d: {
              authorization: 'Bearer secret-06',
              cookie: 'hatch_session=secret-07',
              list: [{ access_token: 'secret-08' }, { nested: [{ sendgrid_api_key: 'secret-09' }] }],
            },
          },
        },
      },
      TWILIO_AUTH_TOKEN: 'secret-10',
      credentials: { user: 'u', pass: 'secret-11' },
      session: 12345678,
      idempotencyKey: 'order-1234',
      messageId: 'm1',
      sendgridWebhookPublicKey: 'MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE',
      token: null,
    },
    'x',
  );
  await new Promise((r) => setImmediate(r));
  t.equal(lines.length, 1, 'still one JSON line');
  const text = JSON.stringify(lines[0]);
  for (let i = 1; i <= 11; i++)
    t.notMatch(text, `secret-${String(i).padStart(2, '0')}`, `secret-${String(i).padStart(2, '0')} is not logged`);
  t.notMatch(text, '12345678', 'a number under a secret key too');
  const line = lines[0] as Record<string, any>;
  t.equal(line.a.b.c.d.authorization, '[redacted]', 'depth 5');
  t.equal(line.a.b.c.d.list[1].nested[0].sendgrid_api_key, '[redacted]', 'inside arrays');
  t.equal(line.err.response.headers['set-cookie'], '[redacted]', 'an array value whole');
  t.equal(line.credentials, '[redacted]', 'an object value whole');
  t.match(
    line,
    {
      messageId: 'm1',
      idempotencyKey: 'order-1234',
      sendgridWebhookPublicKey: 'MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE',
      token: null,
      component: 'c',
      msg: 'x',
    },
    'everything else is kept',
  );
  t.equal(line.err.config.headers['User-Agent'], 'twilio-node');
  t.equal(line.err.message, 'request failed');
});

t.test('query-string secrets, Bearer/Basic credentials, URL passwords and SendGrid keys are redacted inside any string', async (t) => {
  const { stream, lines } = capture();
  const log = createLogger({ service: 's', destination: stream });
  const sgKey = `SG.${'a1B2c3D4e5F6g7H8i9J0kL'}.${'m'.repeat(43)}`;
  log.info(
    {
      req: { method: 'GET', url: '/api/events?token=tok-secret-1&lastEventId=42&limit=20' },
      deep: { x: { y: { z: 'https://h.example/cb?access_token=tok-secret-2#frag' } } },
      other: '/x?a=1&API_KEY=tok-secret-3&sig=tok-secret-4;session=tok-secret-5',
      db: 'postgres://hatch:tok-secret-6@db.internal:5432/hatch',
      header: 'Authorization: Bearer tok-secret-7-abcdefghijklmnop',
      basic: `Basic ${Buffer.from('AC123:tok-secret-8').toString('base64')}`,
      sg: `key was ${sgKey}`,
    },
    'GET /api/events?token=tok-secret-9 failed',
  );
  await new Promise((r) => setImmediate(r));
  const text = JSON.stringify(lines[0]);
  for (let i = 1; i <= 9; i++) t.notMatch(text, `tok-secret-${i}`, `tok-secret-${i} is not logged`);
  t.notMatch(text, Buffer.from('AC123:tok-secret-8').toString('base64'));
  t.notMatch(text, sgKey);
  const line = lines[0] as Record<string, any>;
  t.equal(line.req.url, '/api/events?token=[redacted]&lastEventId=42&limit=20', 'the other parameters are kept');
  t.equal(line.deep.x.y.z, 'https://h.example/cb?access_token=[redacted]#frag');
  t.equal(line.db, 'postgres://hatch:[redacted]@db.internal:5432/hatch', 'user, host and database kept');
  t.equal(line.msg, 'GET /api/events?token=[redacted] failed');
});

t.test("the service's own secrets are redacted wherever their text appears (configSecrets picks them from its config)", async (t) => {
  const config = {
    HATCH_API_TOKEN: 'hatch-token-0123456789abcdef',
    TWILIO_AUTH_TOKEN: '0123456789abcdef0123456789abcdef',
    SENDGRID_API_KEY: 'SG.short.key-value',
    SENDGRID_WEBHOOK_PUBLIC_KEY: 'MFkwEwYHKoZIzj0CAQYI',
    DATABASE_URL: 'postgres://hatch:db%2Fpass-word@db:5432/hatch',
    PORT: 5002,
    PUBLIC_URL: 'https://hatch.example.com',
  };
  t.same(
    configSecrets(config).sort(),
    ['0123456789abcdef0123456789abcdef', 'SG.short.key-value', 'db/pass-word', 'hatch-token-0123456789abcdef'].sort(),
    'tokens, keys and the database password; not the public key',
  );
  const { stream, lines } = capture();
  const log = createLogger({ service: 's', destination: stream, secrets: configSecrets(config) });
  log.info(
    {
      note: `compared against 0123456789abcdef0123456789abcdef`,
      list: ['SG.short.key-value'],
      enc: 'x=db%2Fpass-word',
      raw: 'hatch-token-0123456789abcdef!',
    },
    'hatch-token-0123456789abcdef',
  );
  await new Promise((r) => setImmediate(r));
  const text = JSON.stringify(lines[0]);
  for (const v of ['0123456789abcdef0123456789abcdef', 'SG.short.key-value', 'db%2Fpass-word', 'hatch-token-0123456789abcdef'])
    t.notMatch(text, v, `${v} is not logged`);
  t.match(lines[0], { note: 'compared against [redacted]', raw: '[redacted]!' });
});

t.test('scrubbing costs a few microseconds a line (measured against writing the line)', async (t) => {
  const scrub = createScrubber([
    'hatch-token-0123456789abcdef',
    '0123456789abcdef0123456789abcdef',
    'SG.abcdefghijklmnop.qrstuvwxyz0123456789',
  ]);
  const line = `${JSON.stringify({ level: 30, time: '2026-01-01T00:00:00.000Z', service: 'gateway', component: 'http', reqId: 'req-1', req: { method: 'POST', url: '/api/send_message?x=1', host: 'localhost:5002', remoteAddress: '127.0.0.1', remotePort: 50000 }, messageId: '0190a0a0-0000-7000-8000-000000000001', conversationId: '0190a0a0-0000-7000-8000-000000000002', msg: 'incoming request' })}\n`;
  const n = 20_000;
  let sink = 0;
  for (let i = 0; i < 2000; i++) sink += scrub(line).length; // warm up
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) sink += scrub(line).length;
  const perLineUs = Number(process.hrtime.bigint() - started) / n / 1000;
  t.ok(sink > 0);
  t.comment(`scrubbing a ${line.length}-byte line: ${perLineUs.toFixed(2)} µs`);
  t.ok(perLineUs < 25, `under 25 µs a line (${perLineUs.toFixed(2)} µs)`);
  t.equal(scrub(line), line, 'a line without secrets comes out unchanged');
});

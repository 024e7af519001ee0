import t from 'tap';
import { EMAIL_LIMITS } from '@hatch/contracts';
import { waitFor, waitForValue } from '@hatch/testing';
import { testGateway } from './helpers.js';

type Gw = Awaited<ReturnType<typeof testGateway>>;

const b64 = (n: number, fill = 'a') => Buffer.alloc(n, fill).toString('base64');
const valid = () => ({ to_email: 'ann@example.com', subject: 'Hello', body: 'Hi Ann,\nsee attached.' });

function send(gw: Gw, payload: unknown, headers: Record<string, string> = {}) {
  return gw.app.inject({
    method: 'POST',
    url: '/api/send_email',
    headers: { ...gw.auth, ...headers },
    payload: payload as Record<string, unknown>,
  });
}

async function counts(gw: Gw) {
  const n = async (table: 'emails' | 'email_attachments' | 'outbox' | 'status_events') =>
    Number(
      (
        await gw.db.db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  return {
    emails: await n('emails'),
    attachments: await n('email_attachments'),
    outbox: await n('outbox'),
    events: await n('status_events'),
  };
}

t.test('POST /api/send_email validation: each rule is 400 naming the field, and nothing is written', async (t) => {
  const gw = await testGateway(t);
  const many = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `${tag}${i}@example.com`);
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['not an address', { to_email: 'not-an-address' }, 'body.to_email'],
    ['65-char local part', { to_email: `${'a'.repeat(65)}@example.com` }, 'body.to_email'],
    ['255-char address', { to_email: `${'a'.repeat(60)}@${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.com0` }, 'body.to_email'],
    ['CRLF header injection in an address', { to_email: 'a@b.co\r\nBcc: x@y.zz' }, 'body.to_email'],
    ['bad address inside an array', { to_email: ['ok@example.com', 'bad@@example.com'] }, 'body.to_email.1'],
    ['duplicate across to and cc (case-insensitive)', { cc: ['ANN@example.com'] }, 'body.cc.0'],
    ['51 recipients in one list', { to_email: many(51, 't') }, 'body.to_email'],
    ['51 recipients across to, cc and bcc', { to_email: many(30, 't'), cc: many(20, 'c'), bcc: 'b@example.com' }, 'body.to_email'],
    ['bad reply_to', { reply_to: 'reply at example.com' }, 'body.reply_to'],
    ['CRLF in subject', { subject: 'Hi\r\nBcc: victim@example.com' }, 'body.subject'],
    ['LF in subject', { subject: 'Hi\nthere' }, 'body.subject'],
    ['empty subject', { subject: '' }, 'body.subject'],
    ['999-char subject', { subject: 's'.repeat(999) }, 'body.subject'],
    ['body over 100 KB', { body: 'x'.repeat(EMAIL_LIMITS.bodyMaxBytes + 1) }, 'body.body'],
    ['html_content over 100 KB', { html_content: 'x'.repeat(EMAIL_LIMITS.bodyMaxBytes + 1) }, 'body.html_content'],
    [
      '11 attachments',
      { attachments: Array.from({ length: 11 }, (_, i) => ({ filename: `f${i}.txt`, type: 'text/plain', content: b64(3) })) },
      'body.attachments',
    ],
    ['bad base64', { attachments: [{ filename: 'a.txt', type: 'text/plain', content: 'not*base64!' }] }, 'body.attachments.0.content'],
    [
      'base64 with line breaks',
      { attachments: [{ filename: 'a.txt', type: 'text/plain', content: 'YWJj\nZGVm' }] },
      'body.attachments.0.content',
    ],
    [
      'attachment over 5 MB decoded',
      { attachments: [{ filename: 'big.bin', type: 'application/octet-stream', content: b64(EMAIL_LIMITS.attachmentMaxBytes + 1) }] },
      'body.attachments.0.content',
    ],
    [
      'filename with a path',
      { attachments: [{ filename: '../../etc/passwd', type: 'text/plain', content: b64(3) }] },
      'body.attachments.0.filename',
    ],
    [
      'filename with a backslash',
      { attachments: [{ filename: 'C:\\evil.exe', type: 'text/plain', content: b64(3) }] },
      'body.attachments.0.filename',
    ],
    [
      'filename with CRLF',
      { attachments: [{ filename: 'a.txt\r\nX: y', type: 'text/plain', content: b64(3) }] },
      'body.attachments.0.filename',
    ],
    ['type not a MIME type', { attachments: [{ filename: 'a.txt', type: 'text plain', content: b64(3) }] }, 'body.attachments.0.type'],
    ['unknown field', { from_email: 'me@example.com' }, 'body.from_email'],
    ['missing to_email', { to_email: undefined }, 'body.to_email'],
  ];
  for (const [name, patch, field] of cases) {
    const payload = { ...valid(), ...patch };
    const res = await send(gw, JSON.parse(JSON.stringify(payload)));
    t.equal(res.statusCode, 400, `${name}: 400`);
    const body = res.json();
    t.match(body, { success: false, code: 'INVALID_REQUEST' }, `${name}: contract error body`);
    t.ok(
      (body.details ?? []).some((d: { field: string }) => d.field === field),
      `${name}: names ${field} (got ${JSON.stringify((body.details ?? []).map((d: { field: string }) => d.field))})`,
    );
  }
  t.same(await counts(gw), { emails: 0, attachments: 0, outbox: 0, events: 0 }, 'nothing written for any rejected request');
});

t.test('attachments over 20 MB in all are 400 (the route takes bodies far above the 64 KiB default)', async (t) => {
  const gw = await testGateway(t);
  const each = 4_200_000; // 5 × 4.2 MB = 21 MB decoded > 20 MiB; ~28 MB of base64 fits the route's limit
  const content = b64(each);
  const attachments = Array.from({ length: 5 }, (_, i) => ({ filename: `part${i}.bin`, type: 'application/octet-stream', content }));
  const res = await send(gw, { ...valid(), attachments });
  t.equal(res.statusCode, 400);
  t.ok(res.json().details.some((d: { field: string }) => d.field === 'body.attachments'));
  t.same(await counts(gw), { emails: 0, attachments: 0, outbox: 0, events: 0 });
  const tooBig = await gw.app.inject({
    method: 'POST',
    url: '/api/send_message',
    headers: gw.auth,
    payload: { to: 'bob', body: 'x'.repeat(100_000) },
  });
  t.equal(tooBig.statusCode, 413, 'other routes keep the 64 KiB limit');
});

t.test('POST /api/send_email returns 202 and writes the row, attachment content apart, a timeline row and an outbox job', async (t) => {
  const gw = await testGateway(t, { SENDGRID_FROM_EMAIL: 'hatch@example.com' });
  const pdf = Buffer.from('%PDF-1.4 pretend');
  const big = Buffer.alloc(1024 * 1024, 7); // 1 MiB: far over the global 64 KiB body limit
  const res = await send(gw, {
    ...valid(),
    to_email: ['ann@example.com', 'al@example.com'],
    cc: 'carl@example.com',
    bcc: ['bea@example.com'],
    reply_to: 'desk@example.com',
    subject: `'; DROP TABLE emails;--`,
    attachments: [
      { filename: 'report.pdf', type: 'application/pdf', content: pdf.toString('base64') },
      { filename: 'blob.bin', type: 'Application/Octet-Stream', content: big.toString('base64') },
    ],
  });
  t.equal(res.statusCode, 202);
  const body = res.json();
  t.match(body, { success: true, status: 'queued', message: String });
  const row = await gw.db.db.selectFrom('emails').selectAll().where('id', '=', body.email_id).executeTakeFirstOrThrow();
  t.match(row, {
    to_email: ['ann@example.com', 'al@example.com'],
    cc: ['carl@example.com'],
    bcc: ['bea@example.com'],
    reply_to: 'desk@example.com',
    from_email: 'hatch@example.com',
    status: 'queued',
    subject: `'; DROP TABLE emails;--`,
  });
  t.same(
    row.attachments,
    [
      { filename: 'report.pdf', type: 'application/pdf', size: pdf.length },
      { filename: 'blob.bin', type: 'application/octet-stream', size: big.length },
    ],
    'the row keeps metadata only',
  );
  const stored = await gw.db.db
    .selectFrom('email_attachments')
    .selectAll()
    .where('email_id', '=', body.email_id)
    .orderBy('position')
    .execute();
  t.equal(stored.length, 2);
  t.ok(Buffer.from(stored[0]!.content).equals(pdf), 'content stored decoded, byte for byte');
  t.ok(Buffer.from(stored[1]!.content).equals(big));
  const events = await gw.db.db.selectFrom('status_events').selectAll().where('email_id', '=', body.email_id).execute();
  t.same(
    events.map((e) => [e.status, e.source]),
    [['queued', 'api']],
  );
  // the relay publishes the job and then deletes the outbox row
  const jobs = await waitForValue(async () => (await gw.bus.jsm.streams.info(gw.names.streams.jobs)).state.messages || undefined, {
    timeoutMs: 10_000,
  });
  t.equal(jobs, 1, 'one email job on the jobs stream');
  await waitFor(async () => (await counts(gw)).outbox === 0, { message: 'outbox row deleted after the publish' });
});

t.test('Idempotency-Key: the same body replays the first answer; another body is 422', async (t) => {
  const gw = await testGateway(t);
  const first = await send(gw, valid(), { 'idempotency-key': 'email-key-1' });
  const again = await send(gw, valid(), { 'idempotency-key': 'email-key-1' });
  t.equal(first.statusCode, 202);
  t.equal(again.statusCode, 202);
  t.equal(again.headers['idempotent-replayed'], 'true');
  t.same(again.json(), first.json());
  const other = await send(gw, { ...valid(), subject: 'Other' }, { 'idempotency-key': 'email-key-1' });
  t.equal(other.statusCode, 422);
  t.equal((await counts(gw)).emails, 1, 'one row');
});

t.test('GET /api/emails pages newest first; GET /api/emails/:id has the timeline; unknown 404, malformed 400', async (t) => {
  const gw = await testGateway(t);
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await send(gw, { ...valid(), subject: `n${i}` })).json().email_id);
  const p1 = (await gw.app.inject({ method: 'GET', url: '/api/emails?limit=2', headers: gw.auth })).json();
  t.same(
    p1.emails.map((e: { subject: string }) => e.subject),
    ['n2', 'n1'],
  );
  t.type(p1.next_cursor, 'string');
  const p2 = (await gw.app.inject({ method: 'GET', url: `/api/emails?limit=2&before=${p1.next_cursor}`, headers: gw.auth })).json();
  t.same(
    p2.emails.map((e: { subject: string }) => e.subject),
    ['n0'],
  );
  t.equal(p2.next_cursor, null);
  const one = await gw.app.inject({ method: 'GET', url: `/api/emails/${ids[0]}`, headers: gw.auth });
  t.equal(one.statusCode, 200);
  t.match(one.json(), {
    email: { id: ids[0], status: 'queued', provider_message_id: null, provider_response: null, attachments: [] },
    timeline: [{ status: 'queued', source: 'api' }],
  });
  t.equal(
    (await gw.app.inject({ method: 'GET', url: '/api/emails/00000000-0000-4000-8000-000000000000', headers: gw.auth })).statusCode,
    404,
  );
  t.equal((await gw.app.inject({ method: 'GET', url: '/api/emails/nope', headers: gw.auth })).statusCode, 400);
  t.equal((await gw.app.inject({ method: 'GET', url: '/api/emails?before=garbage', headers: gw.auth })).statusCode, 400);
  t.equal((await gw.app.inject({ method: 'GET', url: '/api/emails' })).statusCode, 401, 'needs the token');
});

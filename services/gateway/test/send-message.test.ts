import t from 'tap';
import { waitFor } from '@hatch/testing';
import { testGateway } from './helpers.js';

const SMS_FROM = '+15005550006';
// +44 too: the UK numbers below would otherwise meet the spend guard (default: the country of TWILIO_PHONE_NUMBER)
const env = { TWILIO_PHONE_NUMBER: SMS_FROM, TWILIO_AUTH_TOKEN: 'twilio-test-token', HATCH_SMS_ALLOWED_COUNTRIES: '1,44' };

async function counts(db: Awaited<ReturnType<typeof testGateway>>['db']) {
  const q = async (table: 'messages' | 'conversations' | 'outbox' | 'status_events') =>
    Number(
      (
        await db.db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  return {
    messages: await q('messages'),
    conversations: await q('conversations'),
    outbox: await q('outbox'),
    events: await q('status_events'),
  };
}

t.test('POST /api/send_message to a name stores a chat message: 202 stored, no job', async (t) => {
  const { app, auth, db } = await testGateway(t, env);
  const res = await app.inject({
    method: 'POST',
    url: '/api/send_message',
    headers: auth,
    payload: { to: '  Alice ', body: 'hello Alice' },
  });
  t.equal(res.statusCode, 202);
  const body = res.json();
  t.match(body, { success: true, status: 'stored', message_id: /^[0-9a-f-]{36}$/, conversation_id: /^[0-9a-f-]{36}$/ });
  const m = await db.db.selectFrom('messages').selectAll().where('id', '=', body.message_id).executeTakeFirstOrThrow();
  t.match(m, { channel: 'chat', direction: 'outbound', status: 'stored', from_contact: 'me', to_contact: 'Alice', segments: null });
  t.same(await counts(db), { messages: 1, conversations: 1, outbox: 0, events: 1 });
  const again = await app.inject({
    method: 'POST',
    url: '/api/send_message',
    headers: auth,
    payload: { to: 'alice', body: 'same conversation', from: 'ME' },
  });
  t.equal(again.json().conversation_id, body.conversation_id, 'names normalise to one conversation');
});

t.test('POST /api/send_message to an E.164 number: one transaction, then one job on JetStream with Nats-Msg-Id = message id', async (t) => {
  const { app, auth, db, bus, names } = await testGateway(t, env);
  const res = await app.inject({
    method: 'POST',
    url: '/api/send_message',
    headers: auth,
    payload: { to: '+447700900123', body: 'Hi €{}' },
  });
  t.equal(res.statusCode, 202);
  const { message_id, status } = res.json();
  t.equal(status, 'queued');
  const m = await db.db.selectFrom('messages').selectAll().where('id', '=', message_id).executeTakeFirstOrThrow();
  t.match(m, { channel: 'sms', status: 'queued', from_contact: SMS_FROM, to_contact: '+447700900123', segments: 1 });
  await waitFor(async () => (await counts(db)).outbox === 0, { message: 'outbox row deleted after the JetStream ack' });
  const info = await bus.jsm.streams.info(names.streams.jobs);
  t.equal(info.state.messages, 1, 'one job in the work queue');
  const job = await bus.jsm.streams.getMessage(names.streams.jobs, { seq: info.state.last_seq });
  if (!job) throw new Error('job not found');
  t.equal(job.subject, names.subjects.smsJob);
  t.equal(job.header.get('Nats-Msg-Id'), message_id);
  t.match(job.json(), { v: 1, message_id });
  const timeline = await app.inject({ method: 'GET', url: `/api/messages/${message_id}`, headers: auth });
  t.match(timeline.json(), { message: { id: message_id, status: 'queued' }, timeline: [{ status: 'queued', source: 'api' }] });
});

t.test('invalid send_message input is 400 naming the field and writes nothing (T12)', async (t) => {
  const { app, auth, db } = await testGateway(t, env);
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['spaces in number', { to: '+1 555 0100', body: 'x' }, 'body.to'],
    ['16 digits', { to: '+1234567890123456', body: 'x' }, 'body.to'],
    ['too short number', { to: '+1234567', body: 'x' }, 'body.to'],
    ['empty to', { to: '   ', body: 'x' }, 'body.to'],
    ['name over 100 chars', { to: 'a'.repeat(101), body: 'x' }, 'body.to'],
    ['control char in name', { to: 'Bob\u0007', body: 'x' }, 'body.to'],
    ['CRLF in name', { to: 'Bob\r\nBcc: x', body: 'x' }, 'body.to'],
    ['empty body', { to: 'Bob', body: '' }, 'body.body'],
    ['1601 characters', { to: '+15551234567', body: 'a'.repeat(1601) }, 'body.body'],
    ['CRLF in body', { to: 'Bob', body: 'line\r\nline' }, 'body.body'],
    ['NUL in body', { to: 'Bob', body: 'a\u0000b' }, 'body.body'],
    ['SMS from a name', { to: '+15551234567', body: 'x', from: 'Alice' }, 'body.from'],
    ['body not a string', { to: 'Bob', body: 42 }, 'body.body'],
    ['missing to', { body: 'x' }, 'body.to'],
    ['unknown field', { to: 'Bob', body: 'x', priority: 'high' }, 'body.priority'],
  ];
  for (const [name, payload, field] of cases) {
    const res = await app.inject({ method: 'POST', url: '/api/send_message', headers: auth, payload });
    t.equal(res.statusCode, 400, `${name}: 400`);
    t.match(res.json(), { success: false, code: 'INVALID_REQUEST' }, `${name}: contract error`);
    t.ok(
      (res.json().details as Array<{ field: string }>).some((d) => d.field === field),
      `${name}: names ${field}`,
    );
  }
  t.same(await counts(db), { messages: 0, conversations: 0, outbox: 0, events: 0 }, 'nothing written');
  const ok = await app.inject({
    method: 'POST',
    url: '/api/send_message',
    headers: auth,
    payload: { to: '+447700900123', body: 'a'.repeat(1600) },
  });
  t.equal(ok.statusCode, 202, '1600 characters is fine');
  const emoji = await app.inject({
    method: 'POST',
    url: '/api/send_message',
    headers: auth,
    payload: { to: 'Bob', body: '😀'.repeat(1600) },
  });
  t.equal(emoji.statusCode, 202, '1600 emoji are 1600 characters, not 3200');
});

t.test(
  'a to of digits and phone punctuation that is not E.164 is 400 naming body.to with an E.164 hint; names with digits stay chat (issue 14)',
  async (t) => {
    const { app, auth, db } = await testGateway(t, env);
    for (const to of ['4155550100', '(415) 555-0100', '415.555.0100', '415-555-0100', '1', '+1 (415) 555-0100']) {
      const res = await app.inject({ method: 'POST', url: '/api/send_message', headers: auth, payload: { to, body: 'hello' } });
      t.equal(res.statusCode, 400, `${to}: 400`);
      const detail = (res.json().details as Array<{ field: string; message: string }>).find((d) => d.field === 'body.to');
      t.match(detail?.message, /E\.164.*\+14155550100/, `${to}: names body.to with an E.164 example`);
    }
    const from = await app.inject({
      method: 'POST',
      url: '/api/send_message',
      headers: auth,
      payload: { to: 'Alice', body: 'hello', from: '(415) 555-0100' },
    });
    t.equal(from.statusCode, 400, 'the same rule holds for from');
    t.ok(
      (from.json().details as Array<{ field: string }>).some((d) => d.field === 'body.from'),
      'names body.from',
    );
    t.same(await counts(db), { messages: 0, conversations: 0, outbox: 0, events: 0 }, 'nothing stored');
    for (const to of ['Room 101', 'Agent 007', '张伟 2']) {
      const res = await app.inject({ method: 'POST', url: '/api/send_message', headers: auth, payload: { to, body: 'hello' } });
      t.equal(res.statusCode, 202, `${to}: 202`);
      t.equal(res.json().status, 'stored', `${to}: a chat message`);
      const m = await db.db.selectFrom('messages').selectAll().where('id', '=', res.json().message_id).executeTakeFirstOrThrow();
      t.match(m, { channel: 'chat', to_contact: to });
    }
  },
);

t.test('SQL-looking and multi-line text is stored and returned byte-for-byte (T12)', async (t) => {
  const { app, auth } = await testGateway(t, env);
  for (const body of ["'; DROP TABLE messages;--", '1 OR 1=1', 'línea 1\nline 2\t😀 ZWJ 👩‍👩‍👧 RTL שלום e\u0301']) {
    const res = await app.inject({
      method: 'POST',
      url: '/api/send_message',
      headers: auth,
      payload: { to: 'Robert"); DROP TABLE', body },
    });
    t.equal(res.statusCode, 202);
    const got = await app.inject({ method: 'GET', url: `/api/messages/${res.json().message_id}`, headers: auth });
    t.equal(got.json().message.body, body);
  }
});

t.test('a recipient on the opt-out list is refused with 422 RECIPIENT_OPTED_OUT before anything is written', async (t) => {
  const { app, auth, db } = await testGateway(t, env);
  await db.db.insertInto('opt_outs').values({ phone: '+15551230000', reason: 'STOP', source: 'inbound' }).execute();
  const res = await app.inject({ method: 'POST', url: '/api/send_message', headers: auth, payload: { to: '+15551230000', body: 'x' } });
  t.equal(res.statusCode, 422);
  t.match(res.json(), { success: false, code: 'RECIPIENT_OPTED_OUT' });
  t.same(await counts(db), { messages: 0, conversations: 0, outbox: 0, events: 0 });
});

t.test('conversations and messages page newest first with opaque cursors; bad ids and cursors are 400, unknown 404', async (t) => {
  const { app, auth } = await testGateway(t, env);
  const ids: string[] = [];
  let conversation = '';
  for (let i = 0; i < 5; i++) {
    const r = await app.inject({ method: 'POST', url: '/api/send_message', headers: auth, payload: { to: 'Carol', body: `m${i}` } });
    ids.push(r.json().message_id);
    conversation = r.json().conversation_id;
  }
  await app.inject({ method: 'POST', url: '/api/send_message', headers: auth, payload: { to: 'Dave', body: 'newest' } });
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const url: string = `/api/conversation/${conversation}/messages?limit=2${cursor ? `&before=${cursor}` : ''}`;
    const page: { messages: Array<{ id: string; body: string }>; next_cursor: string | null } = (
      await app.inject({ method: 'GET', url, headers: auth })
    ).json();
    seen.push(...page.messages.map((m) => m.body));
    cursor = page.next_cursor;
    pages++;
  } while (cursor && pages < 10);
  t.same(seen, ['m4', 'm3', 'm2', 'm1', 'm0'], 'every message once, newest first');
  t.equal(pages, 3);
  const convs = (await app.inject({ method: 'GET', url: '/api/conversations?limit=1', headers: auth })).json();
  t.equal(convs.conversations.length, 1);
  t.match(convs.conversations[0], { channel: 'chat', message_count: 1, last_message: { body: 'newest' } });
  const next = (await app.inject({ method: 'GET', url: `/api/conversations?limit=5&before=${convs.next_cursor}`, headers: auth })).json();
  t.match(next, { conversations: [{ conversation_id: conversation, message_count: 5, last_message: { body: 'm4' } }], next_cursor: null });
  t.equal((await app.inject({ method: 'GET', url: '/api/conversation/not-a-uuid/messages', headers: auth })).statusCode, 400);
  t.equal(
    (await app.inject({ method: 'GET', url: '/api/conversation/00000000-0000-4000-8000-000000000000/messages', headers: auth })).statusCode,
    404,
  );
  const badCursor = await app.inject({ method: 'GET', url: '/api/conversations?before=garbage', headers: auth });
  t.equal(badCursor.statusCode, 400);
  t.match(badCursor.json(), { details: [{ field: 'querystring.before' }] });
  t.equal((await app.inject({ method: 'GET', url: '/api/conversations?limit=201', headers: auth })).statusCode, 400);
  t.equal((await app.inject({ method: 'GET', url: '/api/conversations?limit=0', headers: auth })).statusCode, 400);
  t.equal((await app.inject({ method: 'GET', url: '/api/messages/00000000-0000-4000-8000-000000000000', headers: auth })).statusCode, 404);
  t.equal((await app.inject({ method: 'GET', url: '/api/messages/xyz', headers: auth })).statusCode, 400);
});

t.test('200 concurrent chat POSTs into one conversation: 200 rows, 0 errors, exact count', async (t) => {
  const { app, auth, db } = await testGateway(t, env);
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      app.inject({ method: 'POST', url: '/api/send_message', headers: auth, payload: { to: 'Erin', body: `n${i}` } }),
    ),
  );
  t.same([...new Set(results.map((r) => r.statusCode))], [202]);
  t.same(await counts(db), { messages: 200, conversations: 1, outbox: 0, events: 200 });
  const conv = await db.db.selectFrom('conversations').selectAll().executeTakeFirstOrThrow();
  t.equal(conv.message_count, 200);
});

t.test('POST /api/messages/:id/retry re-queues a failed SMS and refuses anything else with 409', async (t) => {
  const { app, auth, db, bus, names } = await testGateway(t, env);
  const r = await app.inject({ method: 'POST', url: '/api/send_message', headers: auth, payload: { to: '+15551234567', body: 'x' } });
  const id = r.json().message_id;
  const notFailed = await app.inject({ method: 'POST', url: `/api/messages/${id}/retry`, headers: auth });
  t.equal(notFailed.statusCode, 409);
  t.match(notFailed.json(), { code: 'NOT_RETRYABLE' });
  await db.db.updateTable('messages').set({ status: 'failed', error_code: 'MAX_DELIVERIES' }).where('id', '=', id).execute();
  const retry = await app.inject({ method: 'POST', url: `/api/messages/${id}/retry`, headers: auth });
  t.equal(retry.statusCode, 202);
  t.same(retry.json(), { success: true, message_id: id, status: 'queued' });
  const m = await db.db.selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  t.match(m, { status: 'queued', error_code: null });
  await waitFor(async () => (await bus.jsm.streams.info(names.streams.jobs)).state.messages === 2, {
    message: 'a second job was published (new Nats-Msg-Id)',
  });
  const chat = await app.inject({ method: 'POST', url: '/api/send_message', headers: auth, payload: { to: 'Bob', body: 'x' } });
  t.equal((await app.inject({ method: 'POST', url: `/api/messages/${chat.json().message_id}/retry`, headers: auth })).statusCode, 409);
  t.equal(
    (await app.inject({ method: 'POST', url: '/api/messages/00000000-0000-4000-8000-000000000000/retry', headers: auth })).statusCode,
    404,
  );
});

t.test('flooding one token past HATCH_RATE_LIMIT_PER_MINUTE gets 429 with Retry-After; health stays open (T11)', async (t) => {
  const { app, auth } = await testGateway(t, { ...env, HATCH_RATE_LIMIT_PER_MINUTE: '5' });
  const codes: number[] = [];
  for (let i = 0; i < 7; i++) codes.push((await app.inject({ method: 'GET', url: '/api/conversations', headers: auth })).statusCode);
  t.same(codes, [200, 200, 200, 200, 200, 429, 429]);
  const limited = await app.inject({ method: 'GET', url: '/api/conversations', headers: auth });
  t.match(limited.json(), { success: false, code: 'RATE_LIMITED' });
  t.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After');
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
});

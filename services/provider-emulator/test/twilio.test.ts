import t from 'tap';
import twilio from 'twilio';
import { countSmsSegments } from '@hatch/contracts';
import { admin, emulatorFor, receiverFor, rejection, twilioFor, type Received } from './helpers.js';

const TO = '+15551230001';
const OTHER = '+15551230002';

const statuses = (rs: Received[]) => rs.map((r) => r.form.MessageStatus);

t.test("messages.create answers 201 queued in Twilio's shape and fetch returns the message", async (t) => {
  const emulator = await emulatorFor(t);
  const client = twilioFor(emulator);
  const m = await client.messages.create({
    to: TO,
    from: emulator.twilio.phoneNumber,
    body: 'hello there',
    statusCallback: 'http://127.0.0.1:9/status?mid=m-1',
  });
  t.match(m.sid, /^SM[0-9a-f]{32}$/);
  t.equal(m.status, 'queued');
  t.equal(m.numSegments, '1');
  t.equal(m.errorCode, null);
  t.equal(m.accountSid, emulator.twilio.accountSid);
  t.equal(m.direction, 'outbound-api');
  t.equal(m.apiVersion, '2010-04-01');
  t.ok(m.dateCreated instanceof Date && !Number.isNaN(m.dateCreated.getTime()), 'date_created parses (RFC 2822)');
  t.equal(m.dateSent, null);
  t.equal(m.uri, `/2010-04-01/Accounts/${emulator.twilio.accountSid}/Messages/${m.sid}.json`);

  const fetched = await client.messages(m.sid).fetch();
  t.equal(fetched.sid, m.sid);
  t.equal(fetched.body, 'hello there');
  t.equal(fetched.to, TO);

  const [rec] = emulator.records.messages();
  t.match(rec, { accepted: true, httpStatus: 201, sid: m.sid, statusCallback: 'http://127.0.0.1:9/status?mid=m-1', fault: null });
  t.equal(rec?.params.Body, 'hello there', 'every form field is recorded');
});

t.test("num_segments is the shared segment counter's answer", async (t) => {
  const emulator = await emulatorFor(t);
  const client = twilioFor(emulator);
  const bodies = [
    'a'.repeat(160),
    'a'.repeat(161),
    'ą' + 'a'.repeat(69),
    'a'.repeat(69) + '😀',
    '€'.repeat(81),
    'a'.repeat(152) + '{' + 'a'.repeat(152),
  ];
  for (const body of bodies) {
    const m = await client.messages.create({ to: TO, from: emulator.twilio.phoneNumber, body });
    t.equal(Number(m.numSegments), countSmsSegments(body).segments, `${[...body].length} chars, ${countSmsSegments(body).encoding}`);
  }
  t.equal(
    (await client.messages.create({ to: TO, from: emulator.twilio.phoneNumber, body: 'a'.repeat(1600) })).numSegments,
    '11',
    '1,600 characters are accepted',
  );
});

t.test('status callbacks sending → sent → delivered arrive signed and pass twilio.validateRequest', async (t) => {
  const emulator = await emulatorFor(t);
  const rx = await receiverFor(t);
  const client = twilioFor(emulator);
  const callback = `${rx.url}/webhooks/twilio/status?mid=6f1c1a8e-0000-4000-8000-000000000001`;
  const m = await client.messages.create({ to: TO, from: emulator.twilio.phoneNumber, body: 'track me', statusCallback: callback });

  await rx.waitFor((r) => r.length >= 3, 'three status callbacks');
  t.same(statuses(rx.received), ['sending', 'sent', 'delivered'], 'no callback for the initial queued status');
  for (const r of rx.received) {
    t.equal(r.url, callback, 'posted to the StatusCallback URL, query included');
    t.match(r.headers['content-type'], /^application\/x-www-form-urlencoded/);
    const signature = r.headers['x-twilio-signature'] as string;
    t.ok(twilio.validateRequest(emulator.twilio.authToken, signature, r.url, r.form), `${r.form.MessageStatus}: signature verifies`);
    t.notOk(twilio.validateRequest('another-auth-token-0000000000000', signature, r.url, r.form), 'not with another token');
    t.notOk(twilio.validateRequest(emulator.twilio.authToken, signature, r.url, { ...r.form, To: OTHER }), 'not with a changed parameter');
    t.match(r.form, {
      MessageSid: m.sid,
      SmsSid: m.sid,
      AccountSid: emulator.twilio.accountSid,
      From: emulator.twilio.phoneNumber,
      To: TO,
      ApiVersion: '2010-04-01',
    });
    t.equal(r.form.SmsStatus, r.form.MessageStatus);
    t.notOk('ErrorCode' in r.form);
    t.match(r.headers['i-twilio-idempotency-token'], /^[0-9a-f-]{36}$/);
  }
  const tokens = new Set(rx.received.map((r) => r.headers['i-twilio-idempotency-token']));
  t.equal(tokens.size, 3, 'one idempotency token per event');

  const fetched = await client.messages(m.sid).fetch();
  t.equal(fetched.status, 'delivered');
  t.ok(fetched.dateSent instanceof Date, 'date_sent is set once sent');
  t.equal(fetched.price, '-0.00790');
  await t.resolves(
    rx.waitFor(() => emulator.records.messages()[0]?.callbacks.every((c) => c.ok && c.attempts === 1) === true, 'callback records'),
  );
});

t.test('a Messaging Service message is accepted with num_segments 0, then reports queued too', async (t) => {
  const emulator = await emulatorFor(t);
  const rx = await receiverFor(t);
  const client = twilioFor(emulator);
  const m = await client.messages.create({
    to: TO,
    messagingServiceSid: 'MG' + 'a'.repeat(32),
    body: 'via service',
    statusCallback: `${rx.url}/s`,
  });
  t.equal(m.status, 'accepted');
  t.equal(m.numSegments, '0');
  t.equal(m.from, null);
  await rx.waitFor((r) => r.length >= 4, 'four callbacks');
  t.same(statuses(rx.received), ['queued', 'sending', 'sent', 'delivered']);
  t.equal(rx.received[0]?.form.MessagingServiceSid, 'MG' + 'a'.repeat(32));
  t.equal((await client.messages(m.sid).fetch()).numSegments, '1', 'fetch has the count');
});

t.test('messages.list filters by To, From and DateSent, newest first, across pages', async (t) => {
  const emulator = await emulatorFor(t);
  const client = twilioFor(emulator);
  const from = emulator.twilio.phoneNumber;
  const start = new Date(Date.now() - 5_000);
  const sids: string[] = [];
  for (const body of ['one', 'two', 'three']) sids.push((await client.messages.create({ to: TO, from, body })).sid);
  await client.messages.create({ to: OTHER, from, body: 'elsewhere' });

  const list = await client.messages.list({ to: TO, from, dateSentAfter: start, limit: 50 });
  t.same(
    list.map((m) => m.body),
    ['three', 'two', 'one'],
    'newest first, only To',
  );
  t.same(
    list.map((m) => m.sid),
    [...sids].reverse(),
  );
  t.equal((await client.messages.list({ from, limit: 50 })).length, 4);
  t.equal(
    (await client.messages.list({ to: TO, dateSentBefore: new Date(Date.now() - 3_600_000), limit: 50 })).length,
    0,
    'DateSent< excludes later messages',
  );
  t.equal((await client.messages.list({ to: TO, dateSent: new Date(), limit: 50 })).length, 3, 'DateSent is the whole day');

  const page = await client.messages.page({ to: TO, pageSize: 2 });
  t.equal(page.instances.length, 2);
  t.ok(page.nextPageUrl, 'a next page is linked');
  const next = await page.nextPage();
  t.same(
    next?.instances.map((m) => m.body),
    ['one'],
  );
  t.notOk(next?.nextPageUrl);
  t.equal((await client.messages.list({ to: TO, limit: 2 })).length, 2, 'limit stops paging');
});

t.test("refusals raise the SDK's RestException with Twilio's code and status", async (t) => {
  const emulator = await emulatorFor(t);
  const client = twilioFor(emulator);
  const from = emulator.twilio.phoneNumber;
  const cases: Array<[string, Record<string, string>, number, number]> = [
    ['invalid To', { to: '12345', from, body: 'x' }, 400, 21211],
    ['To with spaces', { to: '+1 555 0100', from, body: 'x' }, 400, 21211],
    ['16 digits', { to: '+1234567890123456', from, body: 'x' }, 400, 21211],
    ['no body', { to: TO, from, body: '' }, 400, 21602],
    ['1,601 characters', { to: TO, from, body: 'a'.repeat(1601) }, 400, 21617],
    ['invalid From', { to: TO, from: '+1', body: 'x' }, 400, 21212],
    ['invalid StatusCallback', { to: TO, from, body: 'x', statusCallback: 'ftp://nope' }, 400, 21609],
  ];
  for (const [name, params, status, code] of cases) {
    const err = await rejection(client.messages.create(params as never));
    t.ok(err instanceof twilio.RestException, `${name}: RestException`);
    t.match(err, { status, code, moreInfo: `https://www.twilio.com/docs/errors/${code}` }, `${name}: ${status} / ${code}`);
  }

  const unauthorised = await rejection(
    twilioFor(emulator, { authToken: 'wrong-token-000000000000000000000' }).messages.create({ to: TO, from, body: 'x' }),
  );
  t.match(unauthorised, { status: 401, code: 20003 }, 'a wrong auth token is 20003');

  const missing = await rejection(client.messages('SM' + '0'.repeat(32)).fetch());
  t.match(missing, { status: 404, code: 20404 }, 'an unknown SID is 20404');

  t.notOk(
    emulator.records.messages().some((m) => m.accepted),
    'nothing was accepted',
  );
  t.equal(emulator.records.messages().length, cases.length + 1, 'every refused attempt is recorded');
  t.match(emulator.records.messages()[0], { accepted: false, httpStatus: 400, errorCode: 21211 });
});

t.test('fault 429 refuses the next N with 20429 and Retry-After, then messages go through', async (t) => {
  const emulator = await emulatorFor(t);
  const client = twilioFor(emulator);
  const from = emulator.twilio.phoneNumber;
  t.equal(
    (await admin(emulator, 'POST', '/_emulator/faults', { provider: 'twilio', kind: '429', count: 2, retryAfterSeconds: 3 })).status,
    201,
  );

  const first = await rejection(client.messages.create({ to: TO, from, body: 'x' }));
  t.match(first, { status: 429, code: 20429 });
  // The SDK drops response headers; read Retry-After off the wire.
  const raw = await fetch(`${emulator.url}/2010-04-01/Accounts/${emulator.twilio.accountSid}/Messages.json`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${emulator.twilio.accountSid}:${emulator.twilio.authToken}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ To: TO, From: from, Body: 'x' }).toString(),
  });
  t.equal(raw.status, 429);
  t.equal(raw.headers.get('retry-after'), '3');
  t.match(await raw.json(), { code: 20429, status: 429, message: String, more_info: String });

  const ok = await client.messages.create({ to: TO, from, body: 'x' });
  t.equal(ok.status, 'queued', 'the fault is used up');
  t.same(
    emulator.records.messages().map((m) => [m.accepted, m.httpStatus, m.fault?.kind ?? null]),
    [
      [false, 429, '429'],
      [false, 429, '429'],
      [true, 201, null],
    ],
  );
  t.same((await admin(emulator, 'GET', '/_emulator/faults')).json.faults, [], 'a used-up fault is gone');
});

t.test('fault 500 refuses without sending; with accepted: true the message exists (ambiguous outcome)', async (t) => {
  const emulator = await emulatorFor(t);
  const rx = await receiverFor(t);
  const client = twilioFor(emulator);
  const from = emulator.twilio.phoneNumber;

  emulator.faults.add({ provider: 'twilio', kind: '500', count: 1 });
  t.match(await rejection(client.messages.create({ to: TO, from, body: 'lost', statusCallback: `${rx.url}/s` })), {
    status: 500,
    code: 20500,
  });
  t.equal((await client.messages.list({ to: TO, limit: 10 })).length, 0, 'not processed');

  emulator.faults.add({ provider: 'twilio', kind: '500', count: 1, accepted: true });
  t.match(await rejection(client.messages.create({ to: TO, from, body: 'sent anyway', statusCallback: `${rx.url}/s` })), {
    status: 500,
    code: 20500,
  });
  const found = await client.messages.list({ to: TO, from, limit: 10 });
  t.same(
    found.map((m) => m.body),
    ['sent anyway'],
    'reconciliation through the list finds it',
  );
  await rx.waitFor((r) => statuses(r).includes('delivered'), 'its callbacks');
  t.equal(rx.received[0]?.form.MessageSid, found[0]?.sid);

  emulator.faults.add({ provider: 'twilio', kind: '503', count: 1, retryAfterSeconds: 2 });
  t.match(await rejection(client.messages.create({ to: TO, from, body: 'x' })), { status: 503, code: 20503 });

  // A 503 after processing carries the Retry-After it was given, like the refusing one.
  emulator.faults.add({ provider: 'twilio', kind: '503', count: 1, accepted: true, retryAfterSeconds: 3 });
  const { accountSid, authToken } = emulator.twilio;
  const res = await fetch(`${emulator.url}/2010-04-01/Accounts/${accountSid}/Messages.json`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${accountSid}:${authToken}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ To: TO, From: from, Body: 'accepted, then 503' }),
  });
  t.equal(res.status, 503);
  t.equal(res.headers.get('retry-after'), '3', 'Retry-After on the accepted 503');
});

t.test('fault hang holds the answer past the client timeout, but the message was accepted', async (t) => {
  const emulator = await emulatorFor(t);
  const client = twilioFor(emulator, { timeoutMs: 300 });
  emulator.faults.add({ provider: 'twilio', kind: 'hang', count: 1, hangMs: 2000 });
  const started = Date.now();
  const err = await rejection(client.messages.create({ to: TO, from: emulator.twilio.phoneNumber, body: 'slow' }));
  t.notOk(err instanceof twilio.RestException, 'a timeout, not an API error');
  t.match(String(err.code ?? err.message), /ECONNABORTED|ETIMEDOUT|timeout/i);
  t.ok(Date.now() - started < 1500, 'the client gave up first');
  const [rec] = emulator.records.messages();
  t.match(rec, { accepted: true, fault: { kind: 'hang' } });
  t.equal(
    (
      await twilioFor(emulator)
        .messages(rec?.sid as string)
        .fetch()
    ).body,
    'slow',
  );
});

t.test('fault drop accepts the message and resets the connection without an answer', async (t) => {
  const emulator = await emulatorFor(t);
  const rx = await receiverFor(t);
  const client = twilioFor(emulator);
  emulator.faults.add({ provider: 'twilio', kind: 'drop', count: 1 });
  const err = await rejection(
    client.messages.create({ to: TO, from: emulator.twilio.phoneNumber, body: 'unknown outcome', statusCallback: `${rx.url}/s` }),
  );
  t.notOk(err instanceof twilio.RestException);
  t.match(String(err.code ?? err.message), /ECONNRESET|socket hang up/i);
  const [rec] = emulator.records.messages();
  t.match(rec, { accepted: true, httpStatus: null, fault: { kind: 'drop' } });
  await rx.waitFor((r) => statuses(r).includes('delivered'), 'callbacks of the dropped request');
  const next = await client.messages.create({ to: TO, from: emulator.twilio.phoneNumber, body: 'fine' });
  t.equal(next.status, 'queued', 'only one request was dropped');
});

t.test('fault error answers a permanent code, only for the matching recipient', async (t) => {
  const emulator = await emulatorFor(t);
  const client = twilioFor(emulator);
  const from = emulator.twilio.phoneNumber;
  emulator.faults.add({ provider: 'twilio', kind: 'error', code: 21610, match: { to: TO } });
  const err = await rejection(client.messages.create({ to: TO, from, body: 'x' }));
  t.match(err, { status: 400, code: 21610, message: 'Attempt to send to unsubscribed recipient' });
  t.equal((await client.messages.create({ to: OTHER, from, body: 'x' })).status, 'queued', 'another recipient is unaffected');
  t.match(await rejection(client.messages.create({ to: TO, from, body: 'again' })), { code: 21610 }, 'no count: it stays until reset');

  t.equal((await admin(emulator, 'DELETE', '/_emulator/faults?provider=twilio')).status, 204);
  t.equal((await client.messages.create({ to: TO, from, body: 'after reset' })).status, 'queued');
});

t.test('a delivery fault ends in undelivered or failed with ErrorCode in the callback', async (t) => {
  const emulator = await emulatorFor(t);
  const rx = await receiverFor(t);
  const client = twilioFor(emulator);
  const from = emulator.twilio.phoneNumber;

  emulator.faults.add({ provider: 'twilio', kind: 'error', delivery: 'undelivered', code: 30005, count: 1 });
  const m1 = await client.messages.create({ to: TO, from, body: 'x', statusCallback: `${rx.url}/one` });
  t.equal(m1.status, 'queued', 'the create itself succeeds');
  await rx.waitFor((r) => r.filter((x) => x.path === '/one').length >= 3, 'undelivered callbacks');
  const one = rx.received.filter((x) => x.path === '/one');
  t.same(statuses(one), ['sending', 'sent', 'undelivered']);
  t.equal(one[2]?.form.ErrorCode, '30005');
  t.ok(
    twilio.validateRequest(
      emulator.twilio.authToken,
      one[2]?.headers['x-twilio-signature'] as string,
      one[2]?.url as string,
      one[2]?.form as Record<string, string>,
    ),
    'ErrorCode is signed too',
  );
  t.match(await client.messages(m1.sid).fetch(), { status: 'undelivered', errorCode: 30005, errorMessage: 'Unknown destination handset' });

  emulator.faults.add({ provider: 'twilio', kind: 'error', delivery: 'failed', count: 1 });
  const m2 = await client.messages.create({ to: TO, from, body: 'y', statusCallback: `${rx.url}/two` });
  await rx.waitFor((r) => r.filter((x) => x.path === '/two').length >= 2, 'failed callbacks');
  const two = rx.received.filter((x) => x.path === '/two');
  t.same(statuses(two), ['sending', 'failed']);
  t.equal(two[1]?.form.ErrorCode, '30008', 'default code of a failure');
  t.match(await client.messages(m2.sid).fetch(), { status: 'failed', errorCode: 30008 });
});

t.test('invalid faults are refused with every problem named', async (t) => {
  const emulator = await emulatorFor(t);
  const res = await admin(emulator, 'POST', '/_emulator/faults', { provider: 'twilio', kind: 'explode', count: 0 });
  t.equal(res.status, 400);
  t.match(res.json.problems.join('\n'), /kind/);
  t.match(res.json.problems.join('\n'), /count/);
  const mixed = await admin(emulator, 'POST', '/_emulator/faults', { provider: 'twilio', kind: 'error', delivery: 'bounce' });
  t.equal(mixed.status, 400);
  t.match(mixed.json.problems[0], /delivery: twilio outcomes are undelivered, failed/);
  t.equal(
    (
      await admin(emulator, 'POST', '/_emulator/faults', [
        { provider: 'twilio', kind: '500' },
        { provider: 'sendgrid', kind: 'nope' },
      ])
    ).status,
    400,
  );
  t.same(emulator.faults.list(), [], 'a refused batch adds nothing');
});

t.test('a failing callback is retried with backoff; a 4xx answer is final', async (t) => {
  const emulator = await emulatorFor(t, { callbackAttempts: 3 });
  const rx = await receiverFor(t);
  const client = twilioFor(emulator);
  let failures = 2;
  rx.respond((r) => (r.form.MessageStatus === 'sending' && failures-- > 0 ? { status: 503 } : { status: 204 }));
  await client.messages.create({ to: TO, from: emulator.twilio.phoneNumber, body: 'x', statusCallback: `${rx.url}/retry` });
  await rx.waitFor(
    (r) => r.filter((x) => x.form.MessageStatus === 'sending').length === 3 && statuses(r).includes('delivered'),
    'three attempts of sending',
  );
  const sending = rx.received.filter((x) => x.form.MessageStatus === 'sending');
  t.equal(new Set(sending.map((x) => x.headers['i-twilio-idempotency-token'])).size, 1, 'retries carry the same idempotency token');
  t.equal(new Set(sending.map((x) => x.headers['x-twilio-signature'])).size, 1);
  await rx.waitFor(() => emulator.records.messages()[0]?.callbacks.find((c) => c.status === 'sending')?.ok === true, 'callback record');
  t.match(
    emulator.records.messages()[0]?.callbacks.find((c) => c.status === 'sending'),
    { attempts: 3, ok: true, httpStatus: 204 },
  );

  rx.respond(() => ({ status: 403 }));
  await client.messages.create({ to: OTHER, from: emulator.twilio.phoneNumber, body: 'x', statusCallback: `${rx.url}/forbidden` });
  await rx.waitFor(
    () =>
      emulator.records.messages()[1]?.callbacks.length === 3 &&
      emulator.records.messages()[1]?.callbacks.every((c) => c.attempts > 0) === true,
    'all refused',
  );
  t.same(
    emulator.records.messages()[1]?.callbacks.map((c) => [c.attempts, c.httpStatus, c.ok]),
    [
      [1, 403, false],
      [1, 403, false],
      [1, 403, false],
    ],
  );
});

t.test('an inbound SMS is played signed, twice with one MessageSid when asked', async (t) => {
  const rx = await receiverFor(t);
  const emulator = await emulatorFor(t, { twilio: { inboundUrl: `${rx.url}/webhooks/twilio/sms` } });
  rx.respond(() => ({ status: 200, headers: { 'content-type': 'text/xml' }, body: '<Response/>' }));
  const res = await admin(emulator, 'POST', '/_emulator/twilio/inbound', { from: TO, body: 'STOP', duplicate: true });
  t.equal(res.status, 200);
  t.equal(rx.received.length, 2);
  const [a, b] = rx.received as [Received, Received];
  t.equal(a.form.MessageSid, b.form.MessageSid, 'same MessageSid twice');
  t.equal(a.headers['i-twilio-idempotency-token'], b.headers['i-twilio-idempotency-token'], 'a retry of the same webhook');
  t.equal(a.path, '/webhooks/twilio/sms');
  t.match(a.form, {
    From: TO,
    To: emulator.twilio.phoneNumber,
    Body: 'STOP',
    NumMedia: '0',
    SmsStatus: 'received',
    AccountSid: emulator.twilio.accountSid,
    NumSegments: '1',
  });
  t.equal(a.form.SmsMessageSid, a.form.MessageSid);
  t.ok(twilio.validateRequest(emulator.twilio.authToken, a.headers['x-twilio-signature'] as string, a.url, a.form));
  t.match(res.json, {
    messageSid: a.form.MessageSid,
    deliveries: [{ status: 200, responseBody: '<Response/>', responseContentType: 'text/xml' }, { status: 200 }],
  });

  const one = await emulator.playInbound({ from: OTHER, to: '+15557654321', body: 'hi 😀', url: `${rx.url}/elsewhere` });
  t.equal(one.deliveries.length, 1);
  t.match(rx.received[2], { path: '/elsewhere', form: { To: '+15557654321', Body: 'hi 😀' } });
  t.equal(emulator.records.inbound().length, 2);

  t.equal((await admin(emulator, 'POST', '/_emulator/twilio/inbound', { from: 'nobody', body: 'x' })).status, 400, 'From must be E.164');
});

import t from 'tap';
import { EventWebhook, EventWebhookHeader } from '@sendgrid/eventwebhook';
import { generateKeyPairSync } from 'node:crypto';
import { admin, emulatorFor, receiverFor, rejection, sendgridFor, type Received, type SendGridResponseError } from './helpers.js';

const FROM = { email: 'hatch@example.com', name: 'Hatch' };

function verify(publicKeyBase64: string, r: Received): boolean {
  const ew = new EventWebhook();
  const key = ew.convertPublicKeyToECDSA(publicKeyBase64);
  return ew.verifySignature(
    key,
    r.raw,
    r.headers[EventWebhookHeader.SIGNATURE().toLowerCase()] as string,
    r.headers[EventWebhookHeader.TIMESTAMP().toLowerCase()] as string,
  );
}

type Event = Record<string, unknown> & { event: string; email: string };
const eventsOf = (rs: Received[]) => rs.flatMap((r) => r.json as Event[]);

t.test('mail send through @sendgrid/mail answers 202 with X-Message-Id and records the whole v3 body', async (t) => {
  const emulator = await emulatorFor(t, { sendgrid: { webhookUrl: null } });
  const mail = sendgridFor(emulator);
  const attachment = Buffer.from('%PDF-1.4 report').toString('base64');
  const [res, body] = await mail.send({
    to: ['alice@example.com', { email: 'bob@example.com', name: 'Bob' }],
    cc: 'carol@example.com',
    bcc: ['dave@example.com'],
    replyTo: 'support@example.com',
    from: FROM,
    subject: 'Quarterly report',
    text: 'plain body',
    html: '<p>html body</p>',
    attachments: [{ content: attachment, filename: 'report.pdf', type: 'application/pdf', disposition: 'attachment' }],
    customArgs: { hatch_email_id: 'e-1', attempt: '1' },
    categories: ['hatch'],
  });
  t.equal(res.statusCode, 202);
  t.match(res.headers['x-message-id'], /^[A-Za-z0-9_-]{22}$/);
  t.same(body, '', 'empty body');

  const [rec] = emulator.records.emails();
  t.match(rec, { accepted: true, httpStatus: 202, messageId: res.headers['x-message-id'], sandbox: false, fault: null });
  t.same(rec?.recipients, ['alice@example.com', 'bob@example.com', 'carol@example.com', 'dave@example.com']);
  t.match(rec?.request, {
    from: FROM,
    reply_to: { email: 'support@example.com' },
    subject: 'Quarterly report',
    personalizations: [
      {
        to: [{ email: 'alice@example.com' }, { email: 'bob@example.com', name: 'Bob' }],
        cc: [{ email: 'carol@example.com' }],
        bcc: [{ email: 'dave@example.com' }],
      },
    ],
    content: [
      { type: 'text/plain', value: 'plain body' },
      { type: 'text/html', value: '<p>html body</p>' },
    ],
    attachments: [{ content: attachment, filename: 'report.pdf', type: 'application/pdf' }],
    custom_args: { hatch_email_id: 'e-1', attempt: '1' },
  });
  const listed = await admin(emulator, 'GET', '/_emulator/emails?to=BOB@example.com');
  t.equal(listed.json.emails.length, 1, 'records filter by any recipient, case-insensitively');
});

t.test('events processed → delivered arrive signed, verify with @sendgrid/eventwebhook, and carry custom_args', async (t) => {
  const rx = await receiverFor(t);
  const emulator = await emulatorFor(t, { sendgrid: { webhookUrl: `${rx.url}/webhooks/sendgrid/events` } });
  const mail = sendgridFor(emulator);
  const [res] = await mail.send({
    personalizations: [
      { to: [{ email: 'alice@example.com' }], customArgs: { recipient: 'a' } },
      { to: [{ email: 'bob@example.com' }], cc: [{ email: 'carol@example.com' }] },
    ],
    from: FROM,
    subject: 'hi',
    content: [{ type: 'text/plain', value: 'hello' }],
    customArgs: { hatch_email_id: 'e-2' },
  } as never);
  const messageId = res.headers['x-message-id'] as string;

  await rx.waitFor((r) => r.length >= 2, 'two event batches');
  for (const r of rx.received) {
    t.equal(r.path, '/webhooks/sendgrid/events');
    t.ok(verify(emulator.sendgrid.publicKeyBase64, r), 'signature verifies with the base64 public key');
    t.ok(verify(emulator.sendgrid.publicKeyPem, r), 'and with the PEM');
    t.notOk(
      verify(emulator.sendgrid.publicKeyBase64, { ...r, raw: r.raw.replace('delivered', 'bounce').replace('processed', 'dropped') }),
      'a tampered body fails',
    );
    t.match(r.headers[EventWebhookHeader.TIMESTAMP().toLowerCase()], /^\d{10}$/);
  }
  const [processed, delivered] = rx.received.map((r) => r.json as Event[]) as [Event[], Event[]];
  t.same(
    processed.map((e) => [e.event, e.email]),
    [
      ['processed', 'alice@example.com'],
      ['processed', 'bob@example.com'],
      ['processed', 'carol@example.com'],
    ],
  );
  t.same(
    delivered.map((e) => e.event),
    ['delivered', 'delivered', 'delivered'],
  );
  const all = eventsOf(rx.received);
  for (const e of all) {
    t.ok(String(e.sg_message_id).startsWith(`${messageId}.filter`), 'sg_message_id starts with X-Message-Id');
    t.equal(e.hatch_email_id, 'e-2', 'message custom_args are top-level fields');
    t.type(e.timestamp, 'number');
  }
  t.equal(all.find((e) => e.email === 'alice@example.com')?.recipient, 'a', 'personalization custom_args too');
  t.notOk('recipient' in (all.find((e) => e.email === 'bob@example.com') ?? {}));
  t.equal(new Set(all.map((e) => e.sg_event_id)).size, all.length, 'sg_event_id is unique per event');
  t.match(emulator.records.emails()[0]?.events.length, 6);
});

t.test('a configured signing key gives a stable public key', async (t) => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const rx = await receiverFor(t);
  const emulator = await emulatorFor(t, { sendgrid: { signingKeyPem: pem.replace(/\n/g, '\\n'), webhookUrl: rx.url } });
  t.equal(emulator.sendgrid.publicKeyBase64, publicKey.export({ type: 'spki', format: 'der' }).toString('base64'));
  await sendgridFor(emulator).send({ to: 'a@example.com', from: FROM, subject: 's', text: 't' });
  await rx.waitFor((r) => r.length >= 1, 'an event batch');
  t.ok(verify(publicKey.export({ type: 'spki', format: 'der' }).toString('base64'), rx.received[0] as Received));

  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  await t.rejects(emulatorFor(t, { sendgrid: { signingKeyPem: rsa } }), /EC P-256/);
});

t.test('sandbox mode answers 200 and sends no events', async (t) => {
  const rx = await receiverFor(t);
  const emulator = await emulatorFor(t, { sendgrid: { webhookUrl: rx.url } });
  const [res] = await sendgridFor(emulator).send({
    to: 'a@example.com',
    from: FROM,
    subject: 's',
    text: 't',
    mailSettings: { sandboxMode: { enable: true } },
  });
  t.equal(res.statusCode, 200);
  t.match(emulator.records.emails()[0], { accepted: true, sandbox: true, httpStatus: 200 });
  await sendgridFor(emulator).send({ to: 'b@example.com', from: FROM, subject: 's', text: 't' });
  await rx.waitFor((r) => eventsOf(r).filter((e) => e.event === 'delivered').length === 1, 'the non-sandbox send');
  t.notOk(
    eventsOf(rx.received).some((e) => e.email === 'a@example.com'),
    'nothing for the sandboxed one',
  );
});

t.test("refusals raise the SDK's ResponseError with the status and SendGrid's error body", async (t) => {
  const emulator = await emulatorFor(t, { sendgrid: { webhookUrl: null } });
  const mail = sendgridFor(emulator);
  const base = {
    personalizations: [{ to: [{ email: 'a@example.com' }] }],
    from: FROM,
    subject: 's',
    content: [{ type: 'text/plain', value: 'x' }],
  };
  const cases: Array<[string, unknown, string | null]> = [
    ['missing from', { ...base, from: undefined }, 'from.email'],
    ['invalid to', { ...base, personalizations: [{ to: [{ email: 'not-an-email' }] }] }, 'personalizations.0.to.0.email'],
    [
      '65-character local part',
      { ...base, personalizations: [{ to: [{ email: `${'a'.repeat(65)}@example.com` }] }] },
      'personalizations.0.to.0.email',
    ],
    [
      'an address the contract refuses (two dots in a row)',
      { ...base, personalizations: [{ to: [{ email: 'a..b@example.com' }] }] },
      'personalizations.0.to.0.email',
    ],
    [
      'header injection in an address',
      { ...base, personalizations: [{ to: [{ email: 'a@b.c\r\nBcc: x@y.z' }] }] },
      'personalizations.0.to.0.email',
    ],
    ['CRLF in the subject', { ...base, subject: 'hi\r\nBcc: x@y.z' }, 'subject'],
    ['CRLF in the from name', { ...base, from: { email: 'hatch@example.com', name: 'Hatch\r\nBcc: x@y.z' } }, 'from.name'],
    ['no personalizations', { ...base, personalizations: [] }, 'personalizations'],
    ['no subject', { ...base, subject: undefined }, 'subject'],
    ['no content', { ...base, content: undefined }, 'content'],
    [
      'html before plain',
      {
        ...base,
        content: [
          { type: 'text/html', value: '<p/>' },
          { type: 'text/plain', value: 'x' },
        ],
      },
      'content',
    ],
    ['attachment not base64', { ...base, attachments: [{ content: 'not base64!', filename: 'a.txt' }] }, 'attachments.0.content'],
    ['attachment without filename', { ...base, attachments: [{ content: 'aGk=' }] }, 'attachments.0.filename'],
    [
      'inline attachment without content_id',
      { ...base, attachments: [{ content: 'aGk=', filename: 'a.png', disposition: 'inline' }] },
      'attachments.0.content_id',
    ],
    ['non-string custom_args', { ...base, custom_args: { n: 1 } }, 'custom_args.n'],
    [
      'duplicate recipient',
      { ...base, personalizations: [{ to: [{ email: 'a@example.com' }], cc: [{ email: 'A@example.com' }] }] },
      'personalizations.0',
    ],
    [
      '1,001 recipients',
      { ...base, personalizations: [{ to: Array.from({ length: 1001 }, (_, i) => ({ email: `r${i}@example.com` })) }] },
      'personalizations',
    ],
    ['sandbox enable not boolean', { ...base, mail_settings: { sandbox_mode: { enable: 'yes' } } }, 'mail_settings.sandbox_mode.enable'],
  ];
  for (const [name, body, field] of cases) {
    // client.request sends the body untouched (the Mail helper would normalise some of it away)
    const err: SendGridResponseError = await rejection((mail as any).client.request({ method: 'POST', url: '/v3/mail/send', body }));
    t.equal(err.code, 400, `${name}: 400`);
    t.equal(err.constructor.name, 'ResponseError');
    t.ok(
      err.response.body.errors.some((e) => e.field === field),
      `${name}: names ${field}`,
    );
  }
  t.equal(emulator.records.emails().length, cases.length, 'each refusal is recorded');
  t.ok(emulator.records.emails().every((e) => !e.accepted && e.httpStatus === 400 && (e.errors?.length ?? 0) > 0));

  const many = await rejection(
    (mail as any).client.request({ method: 'POST', url: '/v3/mail/send', body: { ...base, from: undefined, subject: undefined } }),
  );
  t.ok(many.response.body.errors.length >= 2, 'every problem is reported at once');

  const wrongKey = await rejection(
    sendgridFor(emulator, { apiKey: 'SG.wrong' }).send({ to: 'a@example.com', from: FROM, subject: 's', text: 't' }),
  );
  t.match(wrongKey, {
    code: 401,
    response: { body: { errors: [{ message: 'The provided authorization grant is invalid, expired, or revoked', field: null }] } },
  });

  const noAuth = await fetch(`${emulator.url}/v3/mail/send`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(base),
  });
  t.equal(noAuth.status, 401);
  t.match(await noAuth.json(), { errors: [{ message: 'authorization required' }] });

  const badJson = await fetch(`${emulator.url}/v3/mail/send`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${emulator.sendgrid.apiKey}` },
    body: '{"personalizations":',
  });
  t.equal(badJson.status, 400);
  t.match(await badJson.json(), { errors: [{ field: null }] }, "unparsable JSON answers in SendGrid's shape");
});

t.test('fault 429 carries X-RateLimit-Reset; 500 and 503 are server errors; the SDK sees each', async (t) => {
  const emulator = await emulatorFor(t, { sendgrid: { webhookUrl: null } });
  const mail = sendgridFor(emulator);
  const msg = { to: 'a@example.com', from: FROM, subject: 's', text: 't' };

  emulator.faults.add({ provider: 'sendgrid', kind: '429', count: 1, retryAfterSeconds: 30 });
  const limited: SendGridResponseError = await rejection(mail.send(msg));
  t.equal(limited.code, 429);
  const reset = Number(limited.response.headers['x-ratelimit-reset']);
  t.ok(reset >= Math.floor(Date.now() / 1000) + 29 && reset <= Math.floor(Date.now() / 1000) + 31, 'reset is epoch seconds ~30 s ahead');
  t.equal(limited.response.headers['x-ratelimit-remaining'], '0');

  emulator.faults.add({ provider: 'sendgrid', kind: '500', count: 1 });
  t.match(await rejection(mail.send(msg)), { code: 500, response: { body: { errors: [{ message: 'internal error' }] } } });
  emulator.faults.add({ provider: 'sendgrid', kind: '503', count: 1 });
  t.match(await rejection(mail.send(msg)), { code: 503 });
  t.same(
    emulator.records.emails().map((e) => e.accepted),
    [false, false, false],
    'none was processed',
  );

  emulator.faults.add({ provider: 'sendgrid', kind: '500', count: 1, accepted: true });
  t.match(await rejection(mail.send(msg)), { code: 500 });
  t.match(emulator.records.emails()[3], { accepted: true, httpStatus: 500, messageId: String }, 'accepted: true processes it first');

  const [ok] = await mail.send(msg);
  t.equal(ok.statusCode, 202, 'faults used up');
});

t.test('fault error 403 answers "temporarily blocked" for a matching recipient only', async (t) => {
  const emulator = await emulatorFor(t, { sendgrid: { webhookUrl: null } });
  const mail = sendgridFor(emulator);
  const res = await admin(emulator, 'POST', '/_emulator/faults', {
    provider: 'sendgrid',
    kind: 'error',
    code: 403,
    message: 'You are temporarily blocked from sending emails due to repeated bad requests',
    match: { to: 'blocked@example.com' },
  });
  t.equal(res.status, 201);
  const err: SendGridResponseError = await rejection(
    mail.send({ to: 'blocked@example.com', cc: 'x@example.com', from: FROM, subject: 's', text: 't' }),
  );
  t.equal(err.code, 403);
  t.match(err.response.body.errors[0]?.message, /temporarily blocked/);
  t.equal((await mail.send({ to: 'fine@example.com', from: FROM, subject: 's', text: 't' }))[0].statusCode, 202);

  emulator.faults.reset();
  emulator.faults.add({ provider: 'sendgrid', kind: 'error', code: 400, count: 1 });
  t.match(await rejection(mail.send({ to: 'blocked@example.com', from: FROM, subject: 's', text: 't' })), { code: 400 });
});

t.test('fault hang times the SDK out and drop resets the connection; both were accepted', async (t) => {
  const rx = await receiverFor(t);
  const emulator = await emulatorFor(t, { sendgrid: { webhookUrl: rx.url } });
  const msg = { to: 'a@example.com', from: FROM, subject: 's', text: 't' };

  emulator.faults.add({ provider: 'sendgrid', kind: 'hang', count: 1, hangMs: 2000 });
  const timedOut = await rejection(sendgridFor(emulator, { timeoutMs: 300 }).send(msg));
  t.notOk('response' in timedOut && timedOut.response, 'no response: a client timeout');
  t.match(String(timedOut.code ?? timedOut.message), /ECONNABORTED|ETIMEDOUT|timeout/i);

  emulator.faults.add({ provider: 'sendgrid', kind: 'drop', count: 1 });
  const dropped = await rejection(sendgridFor(emulator).send(msg));
  t.match(String(dropped.code ?? dropped.message), /ECONNRESET|socket hang up/i);

  const [hang, drop] = emulator.records.emails();
  t.match(hang, { accepted: true, fault: { kind: 'hang' } });
  t.match(drop, { accepted: true, httpStatus: null, fault: { kind: 'drop' } });
  await rx.waitFor((r) => eventsOf(r).filter((e) => e.event === 'delivered').length === 2, 'both deliver');
});

const EVENT_ORDER = ['processed', 'dropped', 'deferred', 'bounce', 'delivered'];

t.test('delivery faults: bounce, dropped and deferred events for the matching recipient', async (t) => {
  const rx = await receiverFor(t);
  const emulator = await emulatorFor(t, { sendgrid: { webhookUrl: rx.url } });
  const mail = sendgridFor(emulator);
  emulator.faults.add({ provider: 'sendgrid', kind: 'error', delivery: 'bounce', match: { to: 'gone@example.com' }, count: 1 });
  emulator.faults.add({ provider: 'sendgrid', kind: 'error', delivery: 'dropped', match: { to: 'suppressed@example.com' }, count: 1 });
  emulator.faults.add({ provider: 'sendgrid', kind: 'error', delivery: 'deferred', match: { to: 'slow@example.com' }, count: 1 });

  const [r1] = await mail.send({ to: ['gone@example.com', 'ok@example.com'], from: FROM, subject: 's', text: 't' });
  t.equal(r1.statusCode, 202, 'accepted: the outcome comes as events');
  await mail.send({ to: 'suppressed@example.com', from: FROM, subject: 's', text: 't' });
  await mail.send({ to: 'slow@example.com', from: FROM, subject: 's', text: 't' });

  // Each event is its own signed batch, and batches may arrive in any order (as with SendGrid,
  // which does not promise event order either: the gateway's forward-only statuses take any).
  const byEmail = (email: string) =>
    eventsOf(rx.received)
      .filter((e) => e.email === email)
      .map((e) => String(e.event))
      .sort((a, b) => EVENT_ORDER.indexOf(a) - EVENT_ORDER.indexOf(b));
  await rx.waitFor(
    () =>
      byEmail('slow@example.com').length === 3 &&
      byEmail('gone@example.com').length === 2 &&
      byEmail('ok@example.com').length === 2 &&
      byEmail('suppressed@example.com').length === 1,
    'all events',
  );
  t.same(byEmail('gone@example.com'), ['processed', 'bounce']);
  t.same(byEmail('ok@example.com'), ['processed', 'delivered'], 'the other recipient is delivered');
  t.same(byEmail('suppressed@example.com'), ['dropped']);
  t.same(byEmail('slow@example.com'), ['processed', 'deferred', 'delivered']);
  const bounce = eventsOf(rx.received).find((e) => e.event === 'bounce');
  t.match(bounce, { type: 'bounce', status: '5.1.1', reason: String });
  t.match(
    eventsOf(rx.received).find((e) => e.event === 'dropped'),
    { reason: 'Bounced Address' },
  );
  for (const r of rx.received) t.ok(verify(emulator.sendgrid.publicKeyBase64, r));
});

t.test('a failing event webhook is retried with the same signed batch', async (t) => {
  const rx = await receiverFor(t);
  const emulator = await emulatorFor(t, { sendgrid: { webhookUrl: rx.url }, callbackAttempts: 3 });
  let failures = 1;
  rx.respond(() => (failures-- > 0 ? 'destroy' : { status: 200 }));
  await sendgridFor(emulator).send({ to: 'a@example.com', from: FROM, subject: 's', text: 't' });
  await rx.waitFor(
    () => emulator.records.emails()[0]?.webhooks.length === 2 && emulator.records.emails()[0]?.webhooks.every((w) => w.ok) === true,
    'both batches accepted',
  );
  t.match(emulator.records.emails()[0]?.webhooks, [
    { events: ['processed'], attempts: 2, ok: true, httpStatus: 200 },
    { events: ['delivered'], attempts: 1, ok: true },
  ]);
  const processed = rx.received.filter((r) => (r.json as Event[])[0]?.event === 'processed');
  t.equal(processed.length, 2);
  t.equal(processed[0]?.raw, processed[1]?.raw, 'the retry carries the same events (receivers dedupe on sg_event_id)');
});

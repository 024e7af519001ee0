/** End to end: POST /api/send_email → outbox → JetStream → email-sender → SendGrid SDK → emulator → signed events → gateway. */
import t from 'tap';
import { waitFor } from '@hatch/testing';
import { emailPipeline, FROM } from './harness.js';

type V3 = {
  personalizations: Array<{ to: Array<{ email: string }>; cc?: Array<{ email: string }>; bcc?: Array<{ email: string }> }>;
  from: { email: string };
  reply_to?: { email: string };
  subject: string;
  content: Array<{ type: string; value: string }>;
  attachments?: Array<{ filename: string; type: string; content: string; disposition?: string }>;
  custom_args: Record<string, string>;
};

t.test(
  'an email with cc, bcc, reply_to and an attachment: one v3 request, both parts, sent, then delivered with a full timeline',
  async (t) => {
    const p = await emailPipeline(t);
    await p.startWorker();
    const pdf = Buffer.from('%PDF-1.4 the report');
    const id = await p.send({
      to_email: ['ann@example.com', 'al@example.com'],
      cc: 'carl@example.com',
      bcc: ['bea@example.com'],
      reply_to: 'desk@example.com',
      subject: 'Quarterly <report>',
      body: 'Hi <b>team</b> & "friends",\nthe report is attached.',
      attachments: [{ filename: 'report.pdf', type: 'application/pdf', content: pdf.toString('base64') }],
    });
    await p.waitForStatus(id, ['delivered']);
    const sends = p.sendsOf(id);
    t.equal(sends.length, 1, 'exactly one mail send request');
    const rec = sends[0]!;
    t.equal(rec.httpStatus, 202);
    const v3 = rec.request as V3;
    t.same(v3.personalizations.length, 1);
    t.same(
      v3.personalizations[0]!.to.map((a) => a.email),
      ['ann@example.com', 'al@example.com'],
    );
    t.same(
      v3.personalizations[0]!.cc?.map((a) => a.email),
      ['carl@example.com'],
    );
    t.same(
      v3.personalizations[0]!.bcc?.map((a) => a.email),
      ['bea@example.com'],
    );
    t.equal(v3.from.email, FROM);
    t.equal(v3.reply_to?.email, 'desk@example.com');
    t.equal(v3.subject, 'Quarterly <report>');
    t.same(
      v3.content.map((c) => c.type),
      ['text/plain', 'text/html'],
      'plain-text part always sent, first',
    );
    t.equal(v3.content[0]!.value, 'Hi <b>team</b> & "friends",\nthe report is attached.');
    t.match(v3.content[1]!.value, 'Hi &lt;b&gt;team&lt;/b&gt; &amp; &quot;friends&quot;,<br>');
    t.match(v3.attachments, [
      { filename: 'report.pdf', type: 'application/pdf', content: pdf.toString('base64'), disposition: 'attachment' },
    ]);
    t.same(v3.custom_args, { email_id: id }, 'only our id in custom_args (no PII)');

    const row = await p.email(id);
    t.equal(row.provider_message_id, rec.messageId, 'X-Message-Id stored');
    t.match(row.provider_response, { status: 202, message_id: rec.messageId });
    const left = await p.db.db.selectFrom('email_attachments').select('position').where('email_id', '=', id).execute();
    t.equal(left.length, 0, 'attachment content deleted after sending');

    // four recipients: processed then delivered for each; the timeline has all of them
    await waitFor(
      async () =>
        (await p.db.db.selectFrom('status_events').select('id').where('email_id', '=', id).where('status', '=', 'delivered').execute())
          .length === 4,
    );
    const res = await fetch(`${p.gatewayUrl}/api/emails/${id}`, { headers: p.auth });
    const got = (await res.json()) as {
      email: { status: string; provider_message_id: string };
      timeline: Array<{ status: string; source: string }>;
    };
    t.equal(got.email.status, 'delivered');
    const statuses = got.timeline.map((e) => e.status);
    t.same(statuses.slice(0, 3), ['queued', 'sending', 'sent'], 'api, worker claim, worker sent');
    t.equal(statuses.filter((s) => s === 'sent').length, 1 + 4, 'worker sent + four processed events');
    t.equal(statuses.filter((s) => s === 'delivered').length, 4);
    await p.waitForDrained();
  },
);

t.test('429 then success: the claim is given back, retried after X-RateLimit-Reset, one accepted send', async (t) => {
  const p = await emailPipeline(t);
  p.emulator.faults.add({ provider: 'sendgrid', kind: '429', count: 1, retryAfterSeconds: 1 });
  await p.startWorker();
  const id = await p.send({ to_email: 'ann@example.com', subject: 's', body: 'b' });
  await p.waitForStatus(id, ['sent', 'delivered']);
  const sends = p.sendsOf(id);
  t.same(
    sends.map((s) => s.httpStatus),
    [429, 202],
  );
  const gap = Date.parse(sends[1]!.receivedAt) - Date.parse(sends[0]!.receivedAt);
  t.ok(gap >= 900, `retried after the reset hint (${gap} ms)`);
  const tl = await p.db.db
    .selectFrom('status_events')
    .select(['status', 'provider_code'])
    .where('email_id', '=', id)
    .orderBy('id')
    .execute();
  t.match(tl.slice(0, 4), [
    { status: 'queued' },
    { status: 'sending' },
    { status: 'queued', provider_code: 'HTTP_429' },
    { status: 'sending' },
  ]);
});

t.test("400 from SendGrid: failed at once after one call, with SendGrid's errors in provider_response", async (t) => {
  const p = await emailPipeline(t);
  p.emulator.faults.add({
    provider: 'sendgrid',
    kind: 'error',
    code: 400,
    count: 1,
    message: 'The from address does not match a verified Sender Identity.',
  });
  await p.startWorker();
  const id = await p.send({ to_email: 'ann@example.com', subject: 's', body: 'b' });
  await p.waitForStatus(id, ['failed']);
  const row = await p.email(id);
  t.equal(row.error_code, 'HTTP_400');
  t.match(row.provider_response, { status: 400, errors: [{ message: /verified Sender Identity/ }] });
  await p.waitForDrained();
  t.equal(p.sendsOf(id).length, 1, 'one call');
});

t.test('401/403: failed, a metric, and every send pauses before the next call', async (t) => {
  const p = await emailPipeline(t);
  p.emulator.faults.add({
    provider: 'sendgrid',
    kind: 'error',
    code: 403,
    count: 1,
    message: 'temporarily blocked from sending emails due to repeated bad requests',
  });
  const w = await p.startWorker({ authPauseMs: 1500 });
  const a = await p.send({ to_email: 'ann@example.com', subject: 'a', body: 'b' });
  await p.waitForStatus(a, ['failed']);
  const b = await p.send({ to_email: 'bob@example.com', subject: 'b', body: 'b' });
  await p.waitForStatus(b, ['sent', 'delivered']);
  const [ra] = p.sendsOf(a);
  const [rb] = p.sendsOf(b);
  const gap = Date.parse(rb!.receivedAt) - Date.parse(ra!.receivedAt);
  t.ok(gap >= 1400, `the next send waited for the pause (${gap} ms)`);
  t.match(await w.registry.metrics(), /hatch_sendgrid_auth_failures_total\{[^}]*code="HTTP_403"[^}]*\} 1/);
  t.equal((await p.email(a)).error_code, 'HTTP_403');
});

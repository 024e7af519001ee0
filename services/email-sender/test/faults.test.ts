/** SendGrid faults through the real SDK: unknown outcomes, attempts exhausted, poison jobs. */
import t from 'tap';
import { JOB_HEADERS } from '@hatch/contracts';
import { emailPipeline } from './harness.js';

t.test('connection dropped after SendGrid accepted: its events prove it, so the email is sent once and never resent', async (t) => {
  const p = await emailPipeline(t);
  p.emulator.faults.add({ provider: 'sendgrid', kind: 'drop', count: 1 });
  await p.startWorker({ unknownOutcomeWaitMs: 1500 });
  const id = await p.send({ to_email: 'ann@example.com', subject: 's', body: 'b' });
  await p.waitForStatus(id, ['delivered']);
  await p.waitForDrained(); // the redelivered job found the email moved on by the events and acked
  t.equal(p.sendsOf(id).length, 1, 'one request reached SendGrid');
  const row = await p.email(id);
  t.equal(row.provider_message_id, p.sendsOf(id)[0]!.messageId, 'the processed event gave us the X-Message-Id');
  const tl = await p.db.db
    .selectFrom('status_events')
    .select(['status', 'source', 'detail'])
    .where('email_id', '=', id)
    .orderBy('id')
    .execute();
  t.ok(
    tl.some((e) => e.source === 'worker' && e.status === 'sending' && /outcome unknown/.test(e.detail ?? '')),
    'the unknown outcome is on the timeline',
  );
});

t.test('500 not accepted, no events: after the wait the email is resent once and sent', async (t) => {
  const p = await emailPipeline(t);
  p.emulator.faults.add({ provider: 'sendgrid', kind: '500', count: 1 });
  await p.startWorker({ unknownOutcomeWaitMs: 800 });
  const id = await p.send({ to_email: 'ann@example.com', subject: 's', body: 'b' });
  await p.waitForStatus(id, ['sent', 'delivered']);
  const sends = p.sendsOf(id);
  t.same(
    sends.map((s) => [s.httpStatus, s.accepted]),
    [
      [500, false],
      [202, true],
    ],
  );
  const gap = Date.parse(sends[1]!.receivedAt) - Date.parse(sends[0]!.receivedAt);
  t.ok(gap >= 700, `waited for events before resending (${gap} ms)`);
  t.equal((await p.email(id)).attempts, 2);
});

t.test('500 on every attempt: at most MaxDeliver calls, then failed MAX_DELIVERIES and the job in the dead-letter stream', async (t) => {
  const p = await emailPipeline(t);
  p.emulator.faults.add({ provider: 'sendgrid', kind: '500' });
  await p.startWorker({ maxDeliver: 3, unknownOutcomeWaitMs: 100, backoffBaseMs: 100, backoffMaxMs: 200 });
  const id = await p.send({ to_email: 'ann@example.com', subject: 's', body: 'b' });
  await p.waitForStatus(id, ['failed'], 30_000);
  const row = await p.email(id);
  t.equal(row.error_code, 'MAX_DELIVERIES');
  const calls = p.sendsOf(id).length;
  t.ok(calls >= 1 && calls <= 3, `no more calls than MaxDeliver (${calls})`);
  const dead = await p.bus.jsm.streams.getMessage(p.nats.names.streams.dlq, { last_by_subj: p.nats.names.subjects.dlqFor('email') });
  t.ok(dead, 'a dead letter');
  t.equal(dead?.header.get(JOB_HEADERS.deadReason), 'MAX_DELIVERIES');
  t.equal(dead?.header.get(JOB_HEADERS.originalMsgId), id, 'with its original Nats-Msg-Id');
  t.match(dead?.json(), { email_id: id });
  await p.waitForDrained();
});

t.test('a poison job goes to the dead-letter stream at once; other jobs keep flowing', async (t) => {
  const p = await emailPipeline(t);
  await p.startWorker();
  await p.bus.js.publish(p.nats.names.subjects.emailJob, new TextEncoder().encode('{"not":"a job"'), { msgID: 'poison-1' });
  const id = await p.send({ to_email: 'ann@example.com', subject: 's', body: 'b' });
  await p.waitForStatus(id, ['sent', 'delivered']);
  await p.waitForDrained();
  const dead = await p.bus.jsm.streams.getMessage(p.nats.names.streams.dlq, { last_by_subj: p.nats.names.subjects.dlqFor('email') });
  t.equal(dead?.header.get(JOB_HEADERS.deadReason), 'POISON');
  t.equal(new TextDecoder().decode(dead?.data), '{"not":"a job"', 'the original bytes are kept');
});

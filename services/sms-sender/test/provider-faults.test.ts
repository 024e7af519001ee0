import t from 'tap';
import { JOB_HEADERS } from '@hatch/contracts';
import { waitFor } from '@hatch/testing';
import { pipeline, type Pipeline } from './harness.js';

// T9 of the reliability plan: retryable provider faults. 429 is safe to retry after the hint;
// a hang (client timeout) or an accepted 500 is an unknown outcome that must be reconciled at
// the provider, never blindly resent; a job that keeps failing ends in the dead-letter stream
// with the message failed (MAX_DELIVERIES), and the retry endpoint brings it back.

const sendsTo = (p: Pipeline, to: string) => p.emulator.records.messages().filter((m) => m.to === to);
const acceptedTo = (p: Pipeline, to: string) => sendsTo(p, to).filter((m) => m.accepted);

async function timeline(
  p: Pipeline,
  id: string,
): Promise<Array<{ status: string; source: string; provider_code: string | null; detail: string | null }>> {
  const res = await fetch(`${p.gatewayUrl}/api/messages/${id}`, { headers: p.auth });
  return (
    (await res.json()) as { timeline: Array<{ status: string; source: string; provider_code: string | null; detail: string | null }> }
  ).timeline;
}

t.test('Twilio 429 three times, then success: retried after at least the hinted delay each time, exactly one accepted send', async (t) => {
  const p = await pipeline(t);
  const to = '+14155550201';
  p.emulator.faults.add({ provider: 'twilio', kind: '429', count: 3, retryAfterSeconds: 1, match: { to } });
  await p.startWorker({ maxDeliver: 6 });
  const res = await p.send(to, 'rate limited at first');
  const id = res.body.message_id as string;
  await p.waitForStatus(id, ['sent', 'delivered'], 30_000);
  const reqs = sendsTo(p, to);
  t.same(
    reqs.map((r) => r.httpStatus),
    [429, 429, 429, 201],
    'three refusals, then one accepted request',
  );
  t.equal(acceptedTo(p, to).length, 1, 'one final send');
  const at = reqs.map((r) => Date.parse(r.receivedAt));
  for (let i = 1; i < at.length; i++)
    t.ok(
      (at[i] as number) - (at[i - 1] as number) >= 950,
      `attempt ${i + 1} waited ≥ the 1 s Retry-After (${(at[i] as number) - (at[i - 1] as number)} ms)`,
    );
  const m = await p.message(id);
  t.equal(m.provider_sid, acceptedTo(p, to)[0]?.sid);
  const tl = await timeline(p, id);
  t.equal(tl.filter((e) => e.provider_code === '20429').length, 3, 'each 429 is on the timeline');
});

for (const fault of [
  { name: 'a hang past the client timeout', spec: { kind: 'hang' as const, hangMs: 4000 } },
  { name: 'a 500 after Twilio processed the request', spec: { kind: '500' as const, accepted: true } },
]) {
  t.test(`${fault.name}: the outcome is unknown, the next attempt reconciles at Twilio and does not resend`, async (t) => {
    // Status callbacks come late here, so the next attempt finds the message still `sending`
    // with no live claim and has to ask Twilio (list by To/From/time, match the body).
    const p = await pipeline(t, { callbackDelayMs: 10_000 });
    const to = '+14155550202';
    p.emulator.faults.add({ provider: 'twilio', count: 1, match: { to }, ...fault.spec });
    await p.startWorker();
    const res = await p.send(to, `ambiguous ${fault.spec.kind}`);
    const id = res.body.message_id as string;
    await p.waitForStatus(id, ['sent'], 30_000);
    const sends = sendsTo(p, to);
    t.equal(sends.length, 1, 'Twilio saw exactly one create request');
    t.equal(sends[0]?.accepted, true);
    const m = await p.message(id);
    t.equal(m.provider_sid, sends[0]?.sid, 'the message carries the SID found at Twilio');
    t.ok(m.attempts >= 2, `a second attempt reconciled it (attempts ${m.attempts})`);
    const tl = await timeline(p, id);
    t.ok(
      tl.some((e) => e.detail === 'outcome unknown; reconciling'),
      'the unknown outcome is on the timeline',
    );
    t.ok(
      tl.some((e) => e.status === 'sent' && /reconciled/.test(e.detail ?? '')),
      'sent by reconciliation, not by a resend',
    );
  });
}

t.test(
  'a job that exhausts its deliveries is dead-lettered with its headers, the message failed MAX_DELIVERIES; retry re-queues it and it is sent',
  async (t) => {
    const p = await pipeline(t);
    const to = '+14155550203';
    p.emulator.faults.add({ provider: 'twilio', kind: '429', retryAfterSeconds: 0, match: { to } });
    await p.startWorker({ maxDeliver: 3 });
    const res = await p.send(to, 'never gets through');
    const id = res.body.message_id as string;
    await p.waitForStatus(id, ['failed'], 30_000);
    const m = await p.message(id);
    t.equal(m.error_code, 'MAX_DELIVERIES');
    t.equal(acceptedTo(p, to).length, 0, 'nothing was accepted');
    t.equal(sendsTo(p, to).length, 3, 'one provider request per allowed delivery');

    const dlq = p.nats.names.streams.dlq;
    await waitFor(async () => (await p.bus.jsm.streams.info(dlq)).state.messages === 1, { message: 'one dead letter' });
    const info = await p.bus.jsm.streams.info(dlq);
    const dead = await p.bus.jsm.streams.getMessage(dlq, { seq: info.state.last_seq });
    if (!dead) throw new Error('dead letter not found');
    t.equal(dead.subject, p.nats.names.subjects.dlqFor('sms'));
    t.equal(dead.header.get(JOB_HEADERS.deadReason), 'MAX_DELIVERIES');
    t.equal(dead.header.get(JOB_HEADERS.originalMsgId), id, 'original Nats-Msg-Id kept');
    t.equal(dead.header.get(JOB_HEADERS.originalSubject), p.nats.names.subjects.smsJob);
    t.equal(dead.header.get(JOB_HEADERS.deliveries), '3');
    t.match(dead.json(), { v: 1, message_id: id });
    const jobs = p.nats.names.streams.jobs;
    await waitFor(async () => (await p.bus.jsm.streams.info(jobs)).state.messages === 0, {
      timeoutMs: 5000,
      message: 'the dead job left the work queue',
    });
    const failed = await fetch(`${p.gatewayUrl}/api/messages/${id}`, { headers: p.auth });
    t.match(await failed.json(), { message: { status: 'failed', error_code: 'MAX_DELIVERIES' } });

    p.emulator.faults.reset('twilio');
    const retry = await fetch(`${p.gatewayUrl}/api/messages/${id}/retry`, { method: 'POST', headers: p.auth });
    t.equal(retry.status, 202);
    await p.waitForStatus(id, ['sent', 'delivered'], 30_000);
    t.equal(acceptedTo(p, to).length, 1, 'sent exactly once after the retry');
    t.equal((await p.message(id)).error_code, null, 'the error is cleared');
    const tl = await timeline(p, id);
    t.ok(
      tl.some((e) => e.source === 'retry' && e.status === 'queued'),
      'the retry is on the timeline',
    );
  },
);

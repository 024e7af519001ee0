import t from 'tap';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { JOB_HEADERS } from '@hatch/contracts';
import { waitFor } from '@hatch/testing';
import { pipeline, type Pipeline } from './harness.js';

// T10 of the reliability plan: permanent provider errors fail at once with the provider's code
// (no retry, at most one provider call); 21610 puts the recipient on the opt-out list; a job that
// does not decode is dead-lettered at once while the other jobs keep flowing.

const sendsTo = (p: Pipeline, to: string) => p.emulator.records.messages().filter((m) => m.to === to);

for (const code of [21211, 21610]) {
  t.test(`Twilio ${code}: the message fails at once with error_code ${code} after a single provider call`, async (t) => {
    const p = await pipeline(t);
    const to = '+14155550301';
    p.emulator.faults.add({ provider: 'twilio', kind: 'error', code, match: { to } });
    await p.startWorker();
    const res = await p.send(to, `permanent ${code}`);
    const id = res.body.message_id as string;
    await p.waitForStatus(id, ['failed']);
    const m = await p.message(id);
    t.equal(m.error_code, String(code));
    t.equal(m.attempts, 1, 'one attempt');
    t.equal(sendsTo(p, to).length, 1, 'one provider call');
    const got = (await (await fetch(`${p.gatewayUrl}/api/messages/${id}`, { headers: p.auth })).json()) as {
      message: Record<string, unknown>;
      timeline: Array<{ status: string; provider_code: string | null }>;
    };
    t.match(got.message, { status: 'failed', error_code: String(code), error_message: String });
    t.ok(
      got.timeline.some((e) => e.status === 'failed' && e.provider_code === String(code)),
      'the code is on the timeline',
    );
    // A failed message is not retried by the bus: the job was acked, nothing is left to deliver.
    const jobs = p.nats.names.streams.jobs;
    await waitFor(async () => (await p.bus.jsm.streams.info(jobs)).state.messages === 0, { message: 'the job left the work queue' });
    t.equal((await p.bus.jsm.streams.info(p.nats.names.streams.dlq)).state.messages, 0, 'a permanent refusal is not a dead letter');
    t.equal(sendsTo(p, to).length, 1, 'still one provider call');

    const next = await p.send(to, 'and again');
    if (code === 21610) {
      t.equal(next.status, 422, '21610 put the recipient on the opt-out list');
      t.match(next.body, { success: false, code: 'RECIPIENT_OPTED_OUT' });
      t.match(await p.db.db.selectFrom('opt_outs').selectAll().where('phone', '=', to).executeTakeFirst(), {
        reason: '21610',
        source: 'provider',
      });
      t.equal(sendsTo(p, to).length, 1, 'the refused send never reached Twilio');
    } else {
      t.equal(next.status, 202, '21211 blocks nothing');
      t.equal(await p.db.db.selectFrom('opt_outs').selectAll().executeTakeFirst(), undefined);
    }
  });
}

t.test('a poison job (does not decode) is dead-lettered at once while the other jobs flow', async (t) => {
  const p = await pipeline(t);
  await p.startWorker({ concurrency: 2 });
  const subject = p.nats.names.subjects.smsJob;
  // Published straight onto the jobs subject, ahead of the real jobs.
  const h = natsHeaders();
  h.set('Nats-Msg-Id', 'poison-1');
  await p.bus.js.publish(subject, new TextEncoder().encode('{"not": "a job'), { headers: h });
  await p.bus.js.publish(subject, new TextEncoder().encode(JSON.stringify({ v: 1, message_id: 'not-a-uuid', enqueued_at: 'yesterday' })), {
    msgID: 'poison-2',
  });
  const ids: string[] = [];
  for (let i = 0; i < 10; i++) ids.push((await p.send(`+1415555040${i}`, `flowing ${i}`)).body.message_id as string);
  for (const id of ids) await p.waitForStatus(id, ['sent', 'delivered']);
  t.equal(p.emulator.records.messages().length, 10, 'one provider call per real job');

  const dlq = p.nats.names.streams.dlq;
  await waitFor(async () => (await p.bus.jsm.streams.info(dlq)).state.messages === 2, { message: 'two dead letters' });
  const dead = await Promise.all([1, 2].map(async (seq) => p.bus.jsm.streams.getMessage(dlq, { seq })));
  for (const d of dead) {
    if (!d) throw new Error('dead letter missing');
    t.equal(d.header.get(JOB_HEADERS.deadReason), 'POISON');
    t.equal(d.header.get(JOB_HEADERS.deliveries), '1', 'dead-lettered on its first delivery, never retried');
    t.equal(d.header.get(JOB_HEADERS.originalSubject), subject);
    t.ok(d.header.get(JOB_HEADERS.deadDetail).length > 0, 'says why');
  }
  t.same(dead.map((d) => d?.header.get(JOB_HEADERS.originalMsgId)).sort(), ['poison-1', 'poison-2'], 'original Nats-Msg-Id kept');
  t.equal(new Set(dead.map((d) => d?.header.get(JOB_HEADERS.msgId))).size, 2, 'each dead letter has its own dedupe id');
  t.equal(
    new TextDecoder().decode(dead.find((d) => d?.header.get(JOB_HEADERS.originalMsgId) === 'poison-1')?.data),
    '{"not": "a job',
    'payload kept byte for byte',
  );
  const jobs = p.nats.names.streams.jobs;
  // term() must really remove a dead job: nats-server 2.9 ignored `+TERM <reason>` and kept redelivering it.
  await waitFor(async () => (await p.bus.jsm.streams.info(jobs)).state.messages === 0, { message: 'nothing left in the work queue' });
  t.equal(
    (await p.bus.jsm.consumers.info(jobs, p.nats.names.consumers.smsSender)).delivered.consumer_seq,
    12,
    '12 jobs, 12 deliveries: none delivered twice',
  );
});

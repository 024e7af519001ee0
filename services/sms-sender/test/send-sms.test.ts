import t from 'tap';
import { waitFor } from '@hatch/testing';
import { pipeline } from './harness.js';

// The whole path on real parts: gateway (HTTP) → PostgreSQL + outbox → JetStream → sms-sender →
// twilio SDK → emulator → signed status callbacks → gateway → PostgreSQL.

t.test(
  'POST /api/send_message to a number: one provider request, sent then delivered through signed callbacks, a timeline of 4+ entries',
  async (t) => {
    const p = await pipeline(t);
    await p.startWorker();
    const res = await p.send('+14155550101', 'hello from hatch');
    t.equal(res.status, 202);
    t.match(res.body, { success: true, status: 'queued' });
    const id = res.body.message_id as string;
    await p.waitForStatus(id, ['delivered']);

    const records = p.emulator.records.messages();
    t.equal(records.length, 1, 'exactly one request reached Twilio');
    const rec = records[0];
    if (!rec) throw new Error('no record');
    t.match(rec, { accepted: true, httpStatus: 201, to: '+14155550101', from: p.emulator.twilio.phoneNumber, body: 'hello from hatch' });
    t.equal(rec.statusCallback, `${p.gatewayUrl}/webhooks/twilio/status?mid=${id}`, 'status callback carries our id');
    await waitFor(() => rec.callbacks.length >= 3 && rec.callbacks.every((c) => c.ok), { message: 'every callback answered 2xx' });
    t.ok(
      rec.callbacks.every((c) => c.httpStatus === 204),
      'the gateway accepted each signed callback',
    );

    const got = await fetch(`${p.gatewayUrl}/api/messages/${id}`, { headers: p.auth });
    t.equal(got.status, 200);
    const { message, timeline } = (await got.json()) as {
      message: Record<string, unknown>;
      timeline: Array<{ status: string; source: string; at: string }>;
    };
    t.match(message, { id, status: 'delivered', channel: 'sms', direction: 'outbound', provider_sid: rec.sid, segments: 1 });
    t.ok(timeline.length >= 4, `timeline has ${timeline.length} entries`);
    const statuses = timeline.map((e) => e.status);
    t.equal(statuses[0], 'queued');
    t.equal(timeline[0]?.source, 'api');
    const sentAt = statuses.indexOf('sent');
    t.ok(
      sentAt > 0 && statuses.indexOf('sending') < sentAt && sentAt < statuses.lastIndexOf('delivered'),
      `queued → sending → sent → delivered in order: ${statuses.join(', ')}`,
    );
    t.ok(
      timeline.some((e) => e.source === 'worker' && e.status === 'sent'),
      'the worker recorded sent',
    );
    t.ok(
      timeline.some((e) => e.source === 'twilio_callback' && e.status === 'delivered'),
      'the callback recorded delivered',
    );
    const times = timeline.map((e) => Date.parse(e.at));
    t.same(
      times,
      [...times].sort((a, b) => a - b),
      'timeline in time order',
    );
  },
);

t.test('a reply played by the emulator (signed inbound SMS) joins the conversation of the SMS we sent', async (t) => {
  const p = await pipeline(t);
  await p.startWorker();
  const sent = await p.send('+14155550102', 'are you there?');
  await p.waitForStatus(sent.body.message_id as string, ['sent', 'delivered']);
  const played = await p.emulator.playInbound({ from: '+14155550102', body: 'yes!', url: `${p.gatewayUrl}/webhooks/twilio/sms` });
  t.match(played.deliveries, [{ ok: true, status: 200 }]);
  const page = await fetch(`${p.gatewayUrl}/api/conversation/${sent.body.conversation_id as string}/messages`, { headers: p.auth });
  const { messages } = (await page.json()) as { messages: Array<{ body: string; direction: string; status: string }> };
  t.same(
    messages.map((m) => [m.direction, m.status, m.body]),
    [
      ['inbound', 'received', 'yes!'],
      ['outbound', messages[1]?.status, 'are you there?'],
    ],
  );
});

t.test('a busy worker groups its jobs: claims and sent writes share statements, one provider send per message', async (t) => {
  const p = await pipeline(t);
  const N = 16;
  const ids: string[] = [];
  for (let i = 0; i < N; i++) {
    const r = await p.send(`+1415555${String(2000 + i)}`, `grouped #${i}`);
    t.equal(r.status, 202);
    ids.push(r.body.message_id as string);
  }
  // every job already on the stream, so the worker's first pull gets them all at once
  await waitFor(async () => (await p.db.db.selectFrom('outbox').select('id').execute()).length === 0, {
    message: 'the outbox relay published every job',
  });
  const w = await p.startWorker({ concurrency: N });
  for (const id of ids) await p.waitForStatus(id, ['sent', 'delivered']);
  t.equal(p.emulator.records.messages().length, N, 'one provider request per message');
  const values = (await w.registry.getSingleMetric('hatch_write_group_size')?.get())?.values ?? [];
  const of = (name: string, writes: string) =>
    values.find((v) => (v as { metricName?: string }).metricName === name && v.labels.writes === writes)?.value ?? 0;
  t.equal(of('hatch_write_group_size_sum', 'message_claims'), N, 'every job claimed through the grouped claim');
  t.ok(
    of('hatch_write_group_size_count', 'message_claims') < N,
    `fewer claim statements than jobs: ${of('hatch_write_group_size_count', 'message_claims')}`,
  );
  t.equal(of('hatch_write_group_size_sum', 'message_status'), N, 'every sent write grouped');
});

/**
 * The stalled-job rescue of the outbox relay: an SMS or email left `queued` / `sending` with no
 * job anywhere (its job exhausted its deliveries while the database was down, say) is queued
 * again once it has made no progress for the stall window; a fresh one, a finished one or one
 * that still has an outbox row is left alone, and one window re-queues a message at most once.
 */
import t from 'tap';
import { decode, SmsJob, EmailJob } from '@hatch/contracts';
import { waitFor } from '@hatch/testing';
import { STALLED_NOTE_PREFIX } from '@hatch/db';
import { testGateway } from './helpers.js';

t.test('stalled SMS and emails get a new job; fresh, finished and pending ones do not', async (t) => {
  const stalledAfterMs = 60_000;
  const gw = await testGateway(
    t,
    { TWILIO_PHONE_NUMBER: '+15005550006' },
    { build: { outbox: { stalledAfterMs, stalledCheckMs: 3_600_000 } } },
  );
  const { db, bus, names, app } = gw;

  const send = async (to: string) => {
    const r = await app.inject({ method: 'POST', url: '/api/send_message', headers: gw.auth, payload: { to, body: 'hello' } });
    t.equal(r.statusCode, 202);
    return r.json<{ message_id: string }>().message_id;
  };
  const stalled = await send('+15550000001');
  const sendingStalled = await send('+15550000002');
  const fresh = await send('+15550000003');
  const done = await send('+15550000004');
  const withOutbox = await send('+15550000005');
  // the first jobs were published and their outbox rows deleted; empty the queue as if the
  // jobs had been consumed and given up on (after the last publish, or it would land after the purge)
  await waitFor(async () => (await db.sql`SELECT 1 FROM outbox`).length === 0, { message: 'first jobs published' });
  await bus.jsm.streams.purge(names.streams.jobs);
  await db.sql`UPDATE messages SET updated_at = now() - interval '5 minutes' WHERE id IN (${stalled}, ${sendingStalled}, ${done}, ${withOutbox})`;
  await db.sql`UPDATE messages SET status = 'sending' WHERE id = ${sendingStalled}`;
  await db.sql`UPDATE messages SET status = 'delivered' WHERE id = ${done}`;
  await db.sql`INSERT INTO outbox (kind, entity_id, dedupe_id, available_at) VALUES ('sms', ${withOutbox}, ${withOutbox + ':pending'}, now() + interval '1 hour')`;
  const [email] = await db.sql<{ id: string }[]>`
    INSERT INTO emails (id, to_email, from_email, subject, body, status, updated_at)
    VALUES (gen_random_uuid(), ARRAY['a@example.com'], 'hatch@example.com', 's', 'b', 'queued', now() - interval '5 minutes') RETURNING id`;

  t.equal(await app.outbox.requeueStalledOnce(), 3, 'two SMS and one email re-queued');
  await waitFor(async () => (await bus.jsm.streams.info(names.streams.jobs)).state.messages === 3, { message: 'three jobs published' });
  const ids = new Set<string>();
  const info = await bus.jsm.streams.info(names.streams.jobs);
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await bus.jsm.streams.getMessage(names.streams.jobs, { seq });
    if (!m) continue;
    if (m.subject === names.subjects.smsJob) ids.add(decode(SmsJob, m.data).message_id);
    else ids.add(decode(EmailJob, m.data).email_id);
  }
  t.same([...ids].sort(), [stalled, sendingStalled, email!.id].sort(), 'jobs for exactly the stalled ones');
  t.notOk(ids.has(fresh), 'a message still inside its window is left alone');

  await waitFor(async () => (await db.sql`SELECT 1 FROM outbox`).length === 1, { message: 'published rows deleted' });
  const outboxLeft = await db.sql<{ entity_id: string }[]>`SELECT entity_id FROM outbox`;
  t.same(
    outboxLeft.map((r) => r.entity_id),
    [withOutbox],
    'published rows are deleted; the pending one stays',
  );
  const notes = await db.sql<{ id: string; status: string; detail: string }[]>`
    SELECT coalesce(message_id, email_id)::text AS id, status, detail FROM status_events WHERE source = 'outbox' ORDER BY 1`;
  t.same(
    notes.map((n) => [n.id, n.status, n.detail]).sort(),
    [
      [stalled, 'queued', `${STALLED_NOTE_PREFIX}60 s: its job was published again`],
      [sendingStalled, 'sending', `${STALLED_NOTE_PREFIX}60 s: its job was published again`],
      [email!.id, 'queued', `${STALLED_NOTE_PREFIX}60 s: its job was published again`],
    ].sort(),
    'each re-queue is on its timeline (the delay shows), with the status it stalled in; nothing for the others',
  );
  t.equal(await app.outbox.requeueStalledOnce(), 0, 'the same window does not re-queue them twice');
});

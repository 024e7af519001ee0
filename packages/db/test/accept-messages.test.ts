import { randomUUID } from 'node:crypto';
import t from 'tap';
import { createTestDb } from '@hatch/testing';
import { conversationIdFor } from '@hatch/contracts/node';
import {
  acceptMessages,
  claimSend,
  findConversation,
  findIdempotencyKey,
  findMessage,
  findTimeline,
  insertIdempotencyKey,
  insertOptOut,
  type AcceptMessage,
} from '../src/index.js';

const ME = '+15550000001';

function sms(to: string, body: string, at = new Date(), extra: Partial<AcceptMessage> = {}): AcceptMessage {
  const participants = [ME, to].sort() as [string, string];
  return {
    message: {
      id: randomUUID(),
      conversation_id: conversationIdFor(ME, to),
      from_contact: ME,
      to_contact: to,
      body,
      channel: 'sms',
      direction: 'outbound',
      status: 'queued',
      segments: 1,
    },
    conversation: { participants, channel: 'sms', at },
    source: 'api',
    outbox: true,
    ...extra,
  };
}

t.test(
  'one batch: several messages to one conversation are counted once each, the last one is last_message; each SMS gets its job',
  async (t) => {
    const { db } = await createTestDb(t);
    const t0 = Date.now();
    const a = sms('+15551110001', 'one', new Date(t0));
    const b = sms('+15551110001', 'two', new Date(t0 + 1));
    const c = sms('+15551110002', 'other', new Date(t0 + 2));
    const chat: AcceptMessage = {
      message: {
        id: randomUUID(),
        conversation_id: conversationIdFor('me', 'ada'),
        from_contact: 'me',
        to_contact: 'ada',
        body: 'hi',
        channel: 'chat',
        direction: 'outbound',
        status: 'stored',
      },
      conversation: { participants: ['ada', 'me'], channel: 'chat', at: new Date(t0 + 3) },
      source: 'api',
      outbox: false,
    };
    const out = await acceptMessages(db, [a, b, c, chat]);
    t.same(
      out.map((o) => o.accepted),
      [true, true, true, true],
    );
    t.same(
      out.map((o) => (o.accepted ? o.outbox?.entity_id : undefined)),
      [a.message.id, b.message.id, c.message.id, undefined],
      'an outbox row per SMS, in input order; none for chat',
    );
    const conv = await findConversation(db, a.message.conversation_id);
    t.equal(conv?.message_count, 2, 'two messages counted in one upsert');
    t.equal(conv?.last_message_id, b.message.id, 'the later one is the last message');
    t.equal(conv?.last_message_at.getTime(), t0 + 1);
    t.equal((await findConversation(db, c.message.conversation_id))?.message_count, 1);
    t.equal((await findMessage(db, a.message.id))?.created_at.getTime(), t0, 'created_at is the accept time');
    t.same(
      (await findTimeline(db, { messageId: b.message.id })).map((e) => [e.status, e.source]),
      [['queued', 'api']],
    );
    const outbox = await db.selectFrom('outbox').select(['entity_id', 'dedupe_id']).orderBy('id').execute();
    t.same(
      outbox,
      [a, b, c].map((m) => ({ entity_id: m.message.id, dedupe_id: m.message.id })),
    );

    // a second batch adds to the counts
    await acceptMessages(db, [sms('+15551110001', 'three', new Date(t0 + 10))]);
    t.equal((await findConversation(db, a.message.conversation_id))?.message_count, 3);
  },
);

t.test('an outbound SMS to an opted-out number is refused; the rest of the batch is stored', async (t) => {
  const { db } = await createTestDb(t);
  await insertOptOut(db, { phone: '+15552220001', reason: 'STOP', source: 'inbound' });
  const refused = sms('+15552220001', 'no');
  const ok = sms('+15552220002', 'yes');
  const out = await acceptMessages(db, [refused, ok]);
  t.same(out[0], { accepted: false, reason: 'opted_out' });
  t.equal(out[1]?.accepted, true);
  t.equal(await findMessage(db, refused.message.id), undefined, 'nothing stored for the refused one');
  t.equal(await findConversation(db, refused.message.conversation_id), undefined);
  t.ok(await findMessage(db, ok.message.id));
  const jobs = await db.selectFrom('outbox').select('entity_id').execute();
  t.same(jobs, [{ entity_id: ok.message.id }]);
  // inbound from that number is still stored (STOP blocks sending to it, not hearing from it)
  const inbound: AcceptMessage = {
    message: {
      id: randomUUID(),
      conversation_id: refused.message.conversation_id,
      from_contact: '+15552220001',
      to_contact: ME,
      body: 'START',
      channel: 'sms',
      direction: 'inbound',
      status: 'received',
      provider_sid: 'SMin1',
    },
    conversation: refused.conversation,
    source: 'twilio_inbound',
    outbox: false,
  };
  t.same(await acceptMessages(db, [inbound]), [{ accepted: true }]);
});

t.test('the Idempotency-Key answer is completed in the same statement', async (t) => {
  const { db } = await createTestDb(t);
  const expires = new Date(Date.now() + 3600_000);
  for (const key of ['k1', 'k2']) {
    await insertIdempotencyKey(db, {
      scope: 's',
      key,
      method: 'POST',
      path: '/api/send_message',
      request_hash: 'h',
      state: 'in_progress',
      expires_at: expires,
      locked_until: expires,
    });
  }
  const m1 = sms('+15553330001', 'a', new Date(), { idempotency: { scope: 's', key: 'k1', status: 202, body: { success: true, n: 1 } } });
  const m2 = sms('+15553330002', 'b');
  await acceptMessages(db, [m1, m2]);
  const k1 = await findIdempotencyKey(db, 's', 'k1');
  t.equal(k1?.state, 'completed');
  t.equal(k1?.response_status, 202);
  t.same(k1?.response_body, { success: true, n: 1 }, 'stored as JSON, not a string');
  t.equal(k1?.locked_until, null);
  t.equal((await findIdempotencyKey(db, 's', 'k2'))?.state, 'in_progress', 'a key of no message in the batch is untouched');
});

t.test('a batch is all or nothing: one bad row (a duplicate provider SID) stores none of it', async (t) => {
  const { db } = await createTestDb(t);
  const inbound = (sid: string, from: string): AcceptMessage => ({
    message: {
      id: randomUUID(),
      conversation_id: conversationIdFor(from, ME),
      from_contact: from,
      to_contact: ME,
      body: 'in',
      channel: 'sms',
      direction: 'inbound',
      status: 'received',
      provider_sid: sid,
    },
    conversation: { participants: [from, ME].sort() as [string, string], channel: 'sms', at: new Date() },
    source: 'twilio_inbound',
    outbox: false,
  });
  await acceptMessages(db, [inbound('SMdup', '+15554440001')]);
  const fresh = inbound('SMnew', '+15554440002');
  await t.rejects(acceptMessages(db, [fresh, inbound('SMdup', '+15554440003')]), { code: '23505' });
  t.equal(await findMessage(db, fresh.message.id), undefined, 'the good row of the failed batch is not stored');
  t.equal(await findConversation(db, fresh.message.conversation_id), undefined);
  t.same(await acceptMessages(db, []), [], 'an empty batch is no statement');
});

t.test('concurrent batches over the same conversations neither deadlock nor lose a count', async (t) => {
  const { db } = await createTestDb(t, { max: 8 });
  const numbers = ['+15555550001', '+15555550002', '+15555550003', '+15555550004'];
  // each batch touches all four conversations, in a different order
  const batches = Array.from({ length: 24 }, (_, i) =>
    Array.from({ length: 8 }, (_, j) => sms(numbers[(i + j * (i % 2 ? 1 : 3)) % 4] as string, `b${i}m${j}`)),
  );
  await Promise.all(batches.map((b) => acceptMessages(db, b)));
  let total = 0;
  for (const n of numbers) total += (await findConversation(db, conversationIdFor(ME, n)))?.message_count ?? 0;
  t.equal(total, 24 * 8, 'every message counted once');
  const stored = Number(
    (
      await db
        .selectFrom('messages')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );
  t.equal(stored, 24 * 8);
});

t.test('a send claim is one statement: queued → sending with its timeline row, once', async (t) => {
  const { db } = await createTestDb(t);
  const m = sms('+15556660001', 'claim me');
  await acceptMessages(db, [m]);
  const first = await claimSend(db, 'messages', m.message.id);
  t.match(first, { id: m.message.id, status: 'sending', attempts: 1 });
  t.ok(first?.claimed_at instanceof Date, 'claimed_at set');
  t.equal(await claimSend(db, 'messages', m.message.id), undefined, 'a second claim finds nothing');
  t.same(
    (await findTimeline(db, { messageId: m.message.id })).map((e) => [e.status, e.source, e.detail]),
    [
      ['queued', 'api', null],
      ['sending', 'worker', 'attempt 1'],
    ],
    'one sending row, for the claim that won',
  );
});

t.test('a group that commits after a newer one does not take last_message back in time', async (t) => {
  const { db } = await createTestDb(t);
  const t0 = Date.now();
  const newer = sms('+15557770001', 'newer', new Date(t0 + 50));
  const older = sms('+15557770001', 'older', new Date(t0));
  await acceptMessages(db, [newer]);
  await acceptMessages(db, [older]); // accepted earlier, committed later
  const conv = await findConversation(db, newer.message.conversation_id);
  t.equal(conv?.message_count, 2);
  t.equal(conv?.last_message_id, newer.message.id, 'last_message is still the newest message');
  t.equal(conv?.last_message_at.getTime(), t0 + 50);
});

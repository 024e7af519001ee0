import { randomUUID } from 'node:crypto';
import t from 'tap';
import { createTestDb } from '@hatch/testing';
import { conversationIdFor } from '@hatch/contracts/node';
import { EMAIL_STATUSES, MESSAGE_STATUSES } from '@hatch/contracts';
import {
  acceptMessages,
  claimDueOutbox,
  deleteEmailAttachments,
  deleteOptOut,
  deleteOutbox,
  findConversation,
  findEmail,
  findEmailAttachments,
  findIdempotencyKey,
  findMessage,
  findMessageByProviderSid,
  findOptOut,
  findTimeline,
  insertEmail,
  insertEmailAttachments,
  insertIdempotencyKey,
  insertMessage,
  insertOptOut,
  insertOutbox,
  insertStatusEvent,
} from '../src/index.js';

t.test('messages, conversations and the timeline round-trip in one transaction', async (t) => {
  const { db } = await createTestDb(t);
  const convId = conversationIdFor('+15550000001', '+15551234567');
  const ids = [randomUUID(), randomUUID()];
  for (const id of ids) {
    await acceptMessages(db, [
      {
        message: {
          id,
          conversation_id: convId,
          from_contact: '+15550000001',
          to_contact: '+15551234567',
          body: "'; DROP TABLE messages;-- 😀",
          channel: 'sms',
          direction: 'outbound',
          status: 'queued',
          segments: 1,
        },
        conversation: { participants: ['+15550000001', '+15551234567'], channel: 'sms', at: new Date() },
        source: 'api',
        outbox: false,
      },
    ]);
  }
  const conv = await findConversation(db, convId);
  t.equal(conv?.message_count, 2, 'count maintained by the upsert');
  t.equal(conv?.last_message_id, ids[1]);
  t.same(conv?.participants, ['+15550000001', '+15551234567']);
  const m = await findMessage(db, ids[0] as string);
  t.equal(m?.body, "'; DROP TABLE messages;-- 😀", 'stored byte-exact');
  t.ok(m?.created_at instanceof Date);
  const timeline = await findTimeline(db, { messageId: ids[0] as string });
  t.same(
    timeline.map((e) => e.status),
    ['queued'],
  );
});

t.test('provider SIDs are unique; provider events are stored once', async (t) => {
  const { db } = await createTestDb(t);
  const convId = conversationIdFor('+15550000001', '+15557654321');
  const base = {
    conversation_id: convId,
    from_contact: '+15557654321',
    to_contact: '+15550000001',
    body: 'hi',
    channel: 'sms' as const,
    direction: 'inbound' as const,
    status: 'received' as const,
  };
  await db
    .insertInto('conversations')
    .values({ id: convId, participants: ['+15550000001', '+15557654321'], channel: 'sms' })
    .execute();
  const id = randomUUID();
  await insertMessage(db, { ...base, id, provider_sid: 'SM123' });
  await t.rejects(insertMessage(db, { ...base, id: randomUUID(), provider_sid: 'SM123' }), { code: '23505' });
  t.equal((await findMessageByProviderSid(db, 'SM123'))?.id, id);
  t.equal(await insertStatusEvent(db, { message_id: id, status: 'received', source: 'webhook', provider_event_id: 'ev-1' }), true);
  t.equal(
    await insertStatusEvent(db, { message_id: id, status: 'received', source: 'webhook', provider_event_id: 'ev-1' }),
    false,
    'replay ignored',
  );
  t.equal((await findTimeline(db, { messageId: id })).length, 1);
});

t.test('emails keep attachment metadata on the row and content apart', async (t) => {
  const { db } = await createTestDb(t);
  const id = randomUUID();
  await insertEmail(db, {
    id,
    to_email: ['a@example.com'],
    cc: ['c@example.com'],
    from_email: 'me@example.com',
    subject: 'Hello',
    body: 'Body',
    attachments: [{ filename: 'a.txt', type: 'text/plain', size: 3 }],
  });
  await insertEmailAttachments(db, [
    { email_id: id, position: 0, filename: 'a.txt', content_type: 'text/plain', content: Buffer.from('abc') },
  ]);
  const e = await findEmail(db, id);
  t.equal(e?.status, 'queued');
  t.same(e?.cc, ['c@example.com']);
  t.same(e?.bcc, []);
  t.same(e?.attachments, [{ filename: 'a.txt', type: 'text/plain', size: 3 }]);
  const att = await findEmailAttachments(db, id);
  t.equal(att[0]?.content.toString(), 'abc');
  t.equal(await deleteEmailAttachments(db, id), 1);
  await insertStatusEvent(db, { email_id: id, status: 'open', source: 'webhook' });
  t.same(
    (await findTimeline(db, { emailId: id })).map((x) => x.status),
    ['open'],
  );
});

t.test('outbox rows are claimed once across concurrent sweepers (SKIP LOCKED) and deleted on publish', async (t) => {
  const { db } = await createTestDb(t);
  for (let i = 0; i < 4; i++) {
    const id = randomUUID();
    await insertOutbox(db, { kind: 'sms', entity_id: id, dedupe_id: id, available_at: new Date(Date.now() - 60_000) });
  }
  const seen: string[] = [];
  let release!: () => void;
  const hold = new Promise<void>((r) => (release = r));
  const first = db.transaction().execute(async (tx) => {
    const rows = await claimDueOutbox(tx, { limit: 2, olderThanMs: 1000 });
    seen.push(...rows.map((r) => r.id));
    await hold;
  });
  // wait until the first transaction holds its two rows
  for (let i = 0; i < 200 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  const second = await db.transaction().execute((tx) => claimDueOutbox(tx, { limit: 10, olderThanMs: 1000 }));
  release();
  await first;
  t.equal(seen.length, 2);
  t.equal(second.length, 2, 'the other sweeper got only the unlocked rows');
  t.same(new Set([...seen, ...second.map((r) => r.id)]).size, 4, 'no row claimed twice');
  t.equal(await deleteOutbox(db, [...seen, ...second.map((r) => r.id)]), 4);
  await t.rejects(
    insertOutbox(db, { kind: 'sms', entity_id: randomUUID(), dedupe_id: 'same' }).then(() =>
      insertOutbox(db, { kind: 'sms', entity_id: randomUUID(), dedupe_id: 'same' }),
    ),
    { code: '23505' },
  );
});

t.test('idempotency keys: the first request takes the key, the next finds it', async (t) => {
  const { db } = await createTestDb(t);
  const row = {
    scope: 'token:a',
    key: 'k1',
    method: 'POST',
    path: '/api/send_message',
    request_hash: 'h',
    state: 'in_progress',
    expires_at: new Date(Date.now() + 86_400_000),
  };
  t.ok(await insertIdempotencyKey(db, row), 'taken');
  t.equal(await insertIdempotencyKey(db, row), undefined, 'already held');
  t.equal((await findIdempotencyKey(db, 'token:a', 'k1'))?.state, 'in_progress');
  t.ok(await insertIdempotencyKey(db, { ...row, scope: 'token:b' }), 'keys are scoped per credential');
});

t.test('opt-outs: add once, look up, remove', async (t) => {
  const { db } = await createTestDb(t);
  await insertOptOut(db, { phone: '+15551234567', reason: 'STOP', source: 'inbound' });
  await insertOptOut(db, { phone: '+15551234567', reason: '21610', source: 'provider' });
  t.equal((await findOptOut(db, '+15551234567'))?.reason, 'STOP', 'first reason kept');
  t.equal(await deleteOptOut(db, '+15551234567'), true);
  t.equal(await findOptOut(db, '+15551234567'), undefined);
});

t.test('the SQL status enums are the contract status lists', async (t) => {
  const { sql } = await createTestDb(t);
  const enumValues = async (name: string) =>
    (await sql<{ v: string }[]>`SELECT unnest(enum_range(NULL::${sql.unsafe(name)}))::text AS v`).map((r) => r.v);
  t.same(await enumValues('message_status'), [...MESSAGE_STATUSES]);
  t.same(await enumValues('email_status'), [...EMAIL_STATUSES]);
});

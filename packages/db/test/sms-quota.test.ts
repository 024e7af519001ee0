import { randomUUID } from 'node:crypto';
import t from 'tap';
import { createTestDb } from '@hatch/testing';
import { conversationIdFor } from '@hatch/contracts/node';
import { acceptMessages, createDb, findSmsSentToday, insertOptOut, takeSmsQuota, type AcceptMessage } from '../src/index.js';

const ME = '+15550000001';

function sms(to: string, body: string): AcceptMessage {
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
    conversation: { participants: [ME, to].sort() as [string, string], channel: 'sms', at: new Date() },
    source: 'api',
    outbox: true,
  };
}

function chat(to: string, body: string): AcceptMessage {
  return {
    message: {
      id: randomUUID(),
      conversation_id: conversationIdFor('me', to),
      from_contact: 'me',
      to_contact: to,
      body,
      channel: 'chat',
      direction: 'outbound',
      status: 'stored',
    },
    conversation: { participants: ['me', to].sort() as [string, string], channel: 'chat', at: new Date() },
    source: 'api',
    outbox: false,
  };
}

async function countRows(db: Awaited<ReturnType<typeof createTestDb>>['db'], table: 'messages' | 'outbox') {
  return Number(
    (
      await db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );
}

t.test('a batch takes what is left of the daily limit in input order; chat and opted-out numbers take nothing', async (t) => {
  const { db } = await createTestDb(t);
  t.same(await acceptMessages(db, [chat('ada', 'hi')], { smsDailyLimit: 2 }), [{ accepted: true }]);
  t.equal(
    await db
      .selectFrom('sms_daily_counts')
      .selectAll()
      .execute()
      .then((r) => r.length),
    0,
    'a chat-only batch never touches the counter',
  );
  await insertOptOut(db, { phone: '+15552220001', reason: 'STOP', source: 'inbound' });
  const batch = [
    sms('+15552220001', 'opted out'),
    sms('+15552220002', 'a'),
    chat('bob', 'b'),
    sms('+15552220003', 'c'),
    sms('+15552220004', 'd'),
  ];
  const out = await acceptMessages(db, batch, { smsDailyLimit: 2 });
  t.same(
    out.map((o) => (o.accepted ? 'accepted' : o.reason)),
    ['opted_out', 'accepted', 'accepted', 'accepted', 'sms_daily_limit'],
  );
  t.equal(await findSmsSentToday(db), 2);
  t.equal(await countRows(db, 'outbox'), 2, 'jobs only for the accepted SMS');
  t.same(await acceptMessages(db, [sms('+15552220005', 'e')], { smsDailyLimit: 2 }), [{ accepted: false, reason: 'sms_daily_limit' }]);
  t.same((await acceptMessages(db, [sms('+15552220005', 'e')], { smsDailyLimit: 3 }))[0]?.accepted, true, 'a raised limit applies at once');
  t.equal(await findSmsSentToday(db), 3);
  t.equal(await countRows(db, 'messages'), 5);
});

t.test('concurrent batches on separate pools (replicas) never take more than the limit between them', async (t) => {
  const a = await createTestDb(t, { max: 8 });
  const b = createDb(a.url, { max: 8 });
  t.teardown(() => b.close(2));
  const LIMIT = 10;
  const batches = Array.from({ length: 24 }, (_, i) => [
    sms(`+1555333${String(i).padStart(4, '0')}`, `x${i}`),
    chat(`c${i}`, `chat ${i}`),
    sms(`+1555444${String(i).padStart(4, '0')}`, `y${i}`),
  ]);
  const outcomes = (
    await Promise.all(batches.map((batch, i) => acceptMessages((i % 2 ? b : a).db, batch, { smsDailyLimit: LIMIT })))
  ).flat();
  const acceptedSms = outcomes.filter((o, i) => o.accepted && i % 3 !== 1).length;
  t.equal(acceptedSms, LIMIT, 'exactly the limit');
  t.equal(outcomes.filter((o, i) => o.accepted && i % 3 === 1).length, 24, 'every chat message');
  t.equal(outcomes.filter((o) => !o.accepted && o.reason === 'sms_daily_limit').length, 48 - LIMIT);
  t.equal(await findSmsSentToday(a.db), LIMIT);
  t.equal(await countRows(a.db, 'outbox'), LIMIT);
  t.equal(await countRows(a.db, 'messages'), LIMIT + 24);
});

t.test(
  'takeSmsQuota: a rolled-back transaction gives its slot back; a lowered limit gives nothing back and takes nothing; no limit counts',
  async (t) => {
    const { db } = await createTestDb(t);
    t.equal(await takeSmsQuota(db, 3, 2), 2);
    await t.rejects(
      db.transaction().execute(async (tx) => {
        t.equal(await takeSmsQuota(tx, 3, 1), 1);
        throw new Error('rolled back');
      }),
      /rolled back/,
    );
    t.equal(await findSmsSentToday(db), 2, 'the rolled-back slot is free again');
    t.equal(await takeSmsQuota(db, 3, 5), 1, 'only what is left');
    t.equal(await takeSmsQuota(db, 1, 1), 0, 'a limit lowered below the count takes nothing');
    t.equal(await findSmsSentToday(db), 3, '…and leaves the count as it was');
    t.equal(await takeSmsQuota(db, null, 4), 4, 'no limit: counted, never refused');
    t.equal(await findSmsSentToday(db), 7);
    t.equal(await takeSmsQuota(db, 0, 0), 0);
  },
);

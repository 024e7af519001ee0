/** applyMessageStatus / applyEmailStatus: the one-statement status change, against real PostgreSQL. */
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { createTestDb } from '@hatch/testing';
import { conversationIdFor } from '@hatch/contracts/node';
import { applyEmailStatus, applyMessageStatus, findEmail, findMessage, findTimeline, insertEmail, insertMessage } from '../src/index.js';

t.test(
  'a message: forward only, a timeline row for every report, a replayed provider event changes nothing, the SID kept, segments replaced',
  async (t) => {
    const { db } = await createTestDb(t);
    const convId = conversationIdFor('+15550000001', '+15557654321');
    await db
      .insertInto('conversations')
      .values({ id: convId, participants: ['+15550000001', '+15557654321'], channel: 'sms' })
      .execute();
    const id = randomUUID();
    await insertMessage(db, {
      id,
      conversation_id: convId,
      from_contact: '+15550000001',
      to_contact: '+15557654321',
      body: 'hi',
      channel: 'sms',
      direction: 'outbound',
      status: 'sending',
      segments: 1,
      claimed_at: new Date(),
    });

    // delivered arrives before sent (callbacks race the worker's own write)
    const delivered = await applyMessageStatus(db, id, {
      status: 'delivered',
      source: 'twilio_callback',
      providerEventId: 'twilio:1',
      always: { provider_sid: 'SM1' },
    });
    t.match(delivered, { moved: true, duplicate: false, row: { status: 'delivered', provider_sid: 'SM1' } });
    const sent = await applyMessageStatus(db, id, {
      status: 'sent',
      source: 'worker',
      onMove: { claimed_at: null },
      always: { provider_sid: 'SM-other', segments: 2 },
    });
    t.match(
      sent,
      { moved: false, duplicate: false, row: { status: 'delivered', provider_sid: 'SM1', segments: 2 } },
      'no move back; the first SID stays; the segment count is replaced',
    );
    t.not(sent.row?.claimed_at, null, 'columns of a move are not written without the move');
    const replay = await applyMessageStatus(db, id, { status: 'delivered', source: 'twilio_callback', providerEventId: 'twilio:1' });
    t.match(replay, { moved: false, duplicate: true, row: { status: 'delivered' } }, 'a replayed provider event is a duplicate');
    t.same(
      (await findTimeline(db, { messageId: id })).map((e) => e.status),
      ['delivered', 'sent'],
      'every report but the replay is on the timeline',
    );

    const failed = await applyMessageStatus(db, id, {
      status: 'failed',
      source: 'worker',
      onMove: { error_code: 'X', error_message: 'no' },
    });
    t.match(failed, { moved: false, row: { status: 'delivered', error_code: null } }, 'a final status does not move to another final one');
    t.same(
      await applyMessageStatus(db, randomUUID(), { status: 'sent', source: 'worker' }),
      { row: undefined, moved: false, duplicate: false },
      'no such message',
    );
    t.equal((await findMessage(db, id))?.status, 'delivered');
  },
);

t.test('concurrent reports about one message apply one after the other: the furthest status wins whatever the order', async (t) => {
  const { db } = await createTestDb(t, { max: 10 });
  const convId = conversationIdFor('+15550000002', '+15557654322');
  await db
    .insertInto('conversations')
    .values({ id: convId, participants: ['+15550000002', '+15557654322'], channel: 'sms' })
    .execute();
  const ids = Array.from({ length: 20 }, () => randomUUID());
  for (const id of ids)
    await insertMessage(db, {
      id,
      conversation_id: convId,
      from_contact: '+15550000002',
      to_contact: '+15557654322',
      body: 'hi',
      channel: 'sms',
      direction: 'outbound',
      status: 'sending',
    });
  await Promise.all(
    ids.flatMap((id) => [
      applyMessageStatus(db, id, { status: 'sent', source: 'worker' }),
      applyMessageStatus(db, id, { status: 'delivered', source: 'twilio_callback' }),
      applyMessageStatus(db, id, { status: 'sent', source: 'twilio_callback' }),
    ]),
  );
  for (const id of ids) {
    t.equal((await findMessage(db, id))?.status, 'delivered', `${id.slice(0, 8)}: delivered`);
    t.equal((await findTimeline(db, { messageId: id })).length, 3, 'three timeline rows');
  }
});

t.test('an email: timeline-only events never move it; the first provider message id and response are kept', async (t) => {
  const { db } = await createTestDb(t);
  const id = randomUUID();
  await insertEmail(db, {
    id,
    to_email: ['a@example.com'],
    from_email: 'me@example.com',
    subject: 'Hello',
    body: 'Body',
    status: 'sending',
  });
  const open = await applyEmailStatus(db, id, {
    status: 'open',
    timelineOnly: true,
    source: 'sendgrid_event',
    providerEventId: 'sendgrid:o1',
  });
  t.match(open, { moved: false, duplicate: false, row: { status: 'sending' } }, 'an open is not a status');
  const sent = await applyEmailStatus(db, id, {
    status: 'sent',
    source: 'worker',
    always: { provider_message_id: 'msg-1', provider_response: { status: 202 } as never },
  });
  t.match(sent, { moved: true, row: { status: 'sent', provider_message_id: 'msg-1', provider_response: { status: 202 } } });
  const processed = await applyEmailStatus(db, id, {
    status: 'processed',
    timelineOnly: true,
    source: 'sendgrid_event',
    always: { provider_message_id: 'msg-2' },
  });
  t.match(processed, { moved: false, row: { status: 'sent', provider_message_id: 'msg-1' } }, 'the first message id stays');
  const bounced = await applyEmailStatus(db, id, {
    status: 'bounced',
    source: 'sendgrid_event',
    onMove: { error_code: 'bounce', error_message: 'mailbox full' },
  });
  t.match(
    bounced,
    { moved: true, row: { status: 'bounced', error_code: 'bounce', error_message: 'mailbox full' } },
    'a move writes its columns',
  );
  t.same(
    (await findTimeline(db, { emailId: id })).map((e) => e.status),
    ['open', 'sent', 'processed', 'bounced'],
  );
  t.equal((await findEmail(db, id))?.status, 'bounced');
});

t.test(
  "a report that happened before it was written (the worker's sent, a callback having beaten it) takes its place on the timeline",
  async (t) => {
    const { db } = await createTestDb(t);
    const id = randomUUID();
    await insertEmail(db, {
      id,
      to_email: ['a@example.com'],
      from_email: 'me@example.com',
      subject: 'Hello',
      body: 'Body',
      status: 'sending',
    });
    const answeredAt = performance.now() - 50; // SendGrid answered the worker 50 ms ago
    await applyEmailStatus(db, id, { status: 'delivered', source: 'sendgrid_event', providerEventId: 'sendgrid:d1' }); // its event is written first
    const sent = await applyEmailStatus(db, id, { status: 'sent', source: 'worker', happenedAt: answeredAt });
    t.match(sent, { moved: false, row: { status: 'delivered' } }, 'the status stays delivered');
    const timeline = await findTimeline(db, { emailId: id });
    t.same(
      timeline.map((e) => e.status),
      ['sent', 'delivered'],
      'sent first: the order things happened, not the order they were written',
    );
  },
);

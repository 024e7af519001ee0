/** applyMessageStatus / applyEmailStatus: the one-statement status change, against real PostgreSQL. */
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { createTestDb } from '@hatch/testing';
import { conversationIdFor } from '@hatch/contracts/node';
import {
  applyEmailStatus,
  applyMessageStatus,
  applyMessageStatuses,
  claimSends,
  findEmail,
  findMessage,
  findTimeline,
  insertEmail,
  insertMessage,
  messageStatusChange,
  type Database,
  type MessageStatusChange,
  type NewMessage,
  type MessageStatusResult,
} from '../src/index.js';

/** An SMS conversation of its own, and a factory of outbound messages in it (status `sending` unless given). */
async function smsThread(db: Database): Promise<(fields?: Partial<NewMessage>) => Promise<string>> {
  const [from, to] = ['+15550000001', '+15557654321'];
  const convId = conversationIdFor(from, to);
  await db
    .insertInto('conversations')
    .values({ id: convId, participants: [from, to], channel: 'sms' })
    .execute();
  return async (fields = {}) => {
    const id = randomUUID();
    await insertMessage(db, {
      id,
      conversation_id: convId,
      from_contact: from,
      to_contact: to,
      body: 'hi',
      channel: 'sms',
      direction: 'outbound',
      status: 'sending',
      ...fields,
    });
    return id;
  };
}

t.test(
  'a message: forward only, a timeline row for every report, a replayed provider event changes nothing, the SID kept, segments replaced',
  async (t) => {
    const { db } = await createTestDb(t);
    const id = await (await smsThread(db))({ segments: 1, claimed_at: new Date() });

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
  const message = await smsThread(db);
  const ids: string[] = [];
  for (let i = 0; i < 20; i++) ids.push(await message());
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

/**
 * The batch form (applyStatusChanges): N reports about N rows in one statement do per report
 * exactly what the same reports applied one at a time, in order, do. Checked against that very
 * sequence on twin rows: several reports about one row (forward moves, a backwards one, a final
 * after a final), a provider event replayed from the database and one repeated within the batch,
 * a timeline-only report, a row that does not exist, mixed rows.
 */
t.test('a batch of reports is one statement doing per report what the same reports one at a time do', async (t) => {
  const { db } = await createTestDb(t);
  const message = await smsThread(db);
  const newMessage = (status: 'sending' | 'queued') => message({ status, segments: 1, claimed_at: new Date() });
  // two twin sets of rows: A gets the batch, B the same reports one at a time
  const [a1, a2, a3, b1, b2, b3] = [
    await newMessage('sending'),
    await newMessage('sending'),
    await newMessage('queued'),
    await newMessage('sending'),
    await newMessage('sending'),
    await newMessage('queued'),
  ] as string[];
  // a provider event already stored for row 2 (a replay of it below changes nothing)
  await applyMessageStatus(db, a2 as string, { status: 'sent', source: 'twilio_callback', providerEventId: 'twilio:A-old' });
  await applyMessageStatus(db, b2 as string, { status: 'sent', source: 'twilio_callback', providerEventId: 'twilio:B-old' });
  const missing = randomUUID();
  const reports = (r1: string, r2: string, r3: string, ev: string): Array<[string, MessageStatusChange]> => [
    [r1, { status: 'delivered', source: 'twilio_callback', providerEventId: `twilio:${ev}-1`, always: { provider_sid: `SM${ev}1` } }],
    [r2, { status: 'delivered', source: 'twilio_callback', providerEventId: `twilio:${ev}-old` }], // replayed from the database
    [r1, { status: 'sent', source: 'worker', onMove: { claimed_at: null }, always: { provider_sid: `SM${ev}-other`, segments: 3 } }], // backwards
    [r3, { status: 'sending', source: 'worker' }],
    [missing, { status: 'sent', source: 'worker' }],
    [r1, { status: 'delivered', source: 'twilio_callback', providerEventId: `twilio:${ev}-1` }], // repeated within the batch
    [r3, { status: 'failed', source: 'twilio_callback', onMove: { error_code: '30003', error_message: 'unreachable' } }],
    [r3, { status: 'undelivered', source: 'twilio_callback', onMove: { error_code: '30005', error_message: 'unknown' } }], // final after final
    [r2, { status: 'delivered', source: 'twilio_callback', providerEventId: `twilio:${ev}-2`, always: { segments: 2 } }],
  ];
  const batch = await applyMessageStatuses(
    db,
    reports(a1 as string, a2 as string, a3 as string, 'A').map(([id, c]) => messageStatusChange(id, c)),
  );
  const oneByOne: MessageStatusResult[] = [];
  for (const [id, c] of reports(b1 as string, b2 as string, b3 as string, 'B')) oneByOne.push(await applyMessageStatus(db, id, c));

  const shape = (r: MessageStatusResult) => ({
    moved: r.moved,
    duplicate: r.duplicate,
    row: r.row && {
      status: r.row.status,
      provider_sid: r.row.provider_sid?.replace(/^SM[AB]/, 'SM'),
      segments: r.row.segments,
      claimed: r.row.claimed_at !== null,
      error_code: r.row.error_code,
      error_message: r.row.error_message,
    },
  });
  // one at a time, each result is the row after that report; the batch's is the row after the batch
  const finals = new Map<string, MessageStatusResult>();
  reports(b1 as string, b2 as string, b3 as string, 'B').forEach(([id], i) => finals.set(id, oneByOne[i] as MessageStatusResult));
  const expected = reports(b1 as string, b2 as string, b3 as string, 'B').map(([id], i) => ({
    ...shape(oneByOne[i] as MessageStatusResult),
    row: shape(finals.get(id) as MessageStatusResult).row,
  }));
  t.same(batch.map(shape), expected, 'moved, duplicate and the row per report as one at a time');
  t.match(
    batch.map((r) => [r.moved, r.duplicate]),
    [
      [true, false],
      [false, true],
      [false, false],
      [true, false],
      [false, false],
      [false, true],
      [true, false],
      [false, false],
      [true, false],
    ],
  );
  t.equal(batch[4]?.row, undefined, 'no such message');
  for (const [a, b] of [
    [a1, b1],
    [a2, b2],
    [a3, b3],
  ] as Array<[string, string]>) {
    const timeline = async (id: string) =>
      (await findTimeline(db, { messageId: id })).map((e) => [e.status, e.source, e.provider_code, e.provider_event_id?.slice(8) ?? null]);
    t.same(await timeline(a), await timeline(b), 'the same timeline, in the same order');
  }
  t.match(await findMessage(db, a1 as string), { status: 'delivered', provider_sid: 'SMA1', segments: 3, claimed_at: Date });
  t.match(await findMessage(db, a2 as string), { status: 'delivered', segments: 2 });
  t.match(await findMessage(db, a3 as string), { status: 'failed', error_code: '30003', error_message: 'unreachable' });
});

t.test('a batch claim: queued rows claimed once in one statement, the others looked up as they are', async (t) => {
  const { db } = await createTestDb(t);
  const message = await smsThread(db);
  const make = (status: 'queued' | 'sending' | 'delivered', channel: 'sms' | 'chat' = 'sms') => message({ status, channel });
  const [q1, q2, sending, done, chat] = [
    await make('queued'),
    await make('queued'),
    await make('sending'),
    await make('delivered'),
    await make('queued', 'chat'),
  ] as string[];
  const missing = randomUUID();
  const claims = await claimSends(db, 'messages', [q1, sending, q2, missing, done, q1, chat] as string[]);
  t.match(
    claims.map((c) => [c.claimed, c.row?.status, c.row?.attempts]),
    [
      [true, 'sending', 1],
      [false, 'sending', 0],
      [true, 'sending', 1],
      [false, undefined, undefined],
      [false, 'delivered', 0],
      [false, 'sending', 1],
      [false, 'queued', 0],
    ],
    'claimed once each; the rest as they stand; a chat message is no send to claim',
  );
  const again = await claimSends(db, 'messages', [q1 as string, q2 as string]);
  t.same(
    again.map((c) => c.claimed),
    [false, false],
    'a second claim finds nothing',
  );
  for (const id of [q1, q2] as string[])
    t.same(
      (await findTimeline(db, { messageId: id })).map((e) => [e.status, e.detail]),
      [['sending', 'attempt 1']],
      'one sending row per claim',
    );
});

t.test('a claim reads the rows by primary key only, never the in-flight index (a backlog of queued rows costs it nothing)', async (t) => {
  // One connection: the claims and the statistics read below share one backend, whose counters
  // pg_stat_force_next_flush publishes when it goes idle after that statement.
  const { db, sql } = await createTestDb(t, { max: 1 });
  const message = await smsThread(db);
  const ids: string[] = [];
  for (let i = 0; i < 12; i++) ids.push(await message({ status: 'queued' }));
  // the backlog: 3,000 other queued SMS in the same conversation
  await sql`
    INSERT INTO messages (id, conversation_id, from_contact, to_contact, body, channel, direction, status)
    SELECT gen_random_uuid(), conversation_id, from_contact, to_contact, body, channel, direction, 'queued'
    FROM messages, generate_series(1, 250) LIMIT 3000`;
  const inFlightReads = async () => {
    await sql`SELECT pg_stat_force_next_flush()`;
    const [r] = await sql<{ n: string }[]>`SELECT idx_scan::text AS n FROM pg_stat_user_indexes WHERE indexrelname = 'messages_in_flight'`;
    return Number(r?.n);
  };
  // the plan a long-lived pool connection keeps for a prepared statement once it runs it often:
  // the generic one (no parameter values), planned with whatever the table held at the time
  await sql`SET plan_cache_mode = force_generic_plan`;
  const before = await inFlightReads();
  for (const id of ids)
    t.same(
      (await claimSends(db, 'messages', [id])).map((c) => c.claimed),
      [true],
    );
  t.equal(await inFlightReads(), before, 'no claim scanned messages_in_flight');
});

t.test('a report whose strings hold a lone UTF-16 surrogate is stored with U+FFFD in its place, not refused by jsonb', async (t) => {
  const { db } = await createTestDb(t);
  const id = await (await smsThread(db))({ status: 'sent' });
  const r = await applyMessageStatus(db, id, {
    status: 'delivered',
    source: 'twilio_callback',
    providerEventId: 'twilio:\ud800x',
    detail: 'lone \udc3b and a pair 😀',
  });
  t.match(r, { moved: true, row: { status: 'delivered' } });
  const timeline = await findTimeline(db, { messageId: id });
  t.equal(timeline.at(-1)?.detail, 'lone \ufffd and a pair 😀', 'the lone surrogate became U+FFFD; the pair is kept');
});

/**
 * Who sent what (issue 18) against a listening gateway over real sockets: every message, email,
 * retry and timeline entry records the person (a session or a personal token) or the bootstrap
 * token; the API answers `sent_by: {id, name}` / `{id: null, name: "API"}` / null; a chat
 * message's `from` defaults to the sender's name; sends, emails and retries leave audit rows of
 * ids only, the sends' written by the group commit's own statement.
 */
import t from 'tap';
import { acceptMessages, applyMessageStatus, requeueStalled } from '@hatch/db';
import { newRecordId } from '@hatch/contracts/node';
import { waitFor } from '@hatch/testing';
import { accountsGateway, BOOTSTRAP, seedUser, signIn, type AccountsGateway } from './accounts-harness.js';

const SMS_FROM = '+15005550006';

async function people(a: AccountsGateway) {
  const ada = await seedUser(a.g, { email: 'ada@example.com', role: 'admin', password: 'admin passphrase 1', name: 'Ada Lovelace' });
  const bo = await seedUser(a.g, { email: 'bo@example.com', role: 'agent', password: 'agent passphrase 1', name: 'Bo Agent' });
  const cookie = await signIn(a, ada.email, ada.password);
  const boCookie = await signIn(a, bo.email, bo.password);
  const pat = await a.call('POST', '/api/tokens', { headers: { cookie: boCookie }, body: { name: 'script' } });
  if (pat.status !== 201) throw new Error(`token: ${pat.status}`);
  return {
    ada,
    bo,
    /** Ada's browser session, Bo's personal token, the bootstrap token */
    callers: {
      session: { headers: { cookie }, sentBy: { id: ada.id, name: 'Ada Lovelace' } },
      token: { headers: { authorization: `Bearer ${String(pat.body.token)}` }, sentBy: { id: bo.id, name: 'Bo Agent' } },
      bootstrap: { headers: BOOTSTRAP, sentBy: { id: null, name: 'API' } },
    },
  };
}

const env = { TWILIO_PHONE_NUMBER: SMS_FROM, HATCH_SENDER_NAME: 'Front Desk' };

t.test('messages and their timeline name the sender: a session, a personal token, the bootstrap token', async (t) => {
  const a = await accountsGateway(t, { env });
  const { callers } = await people(a);
  for (const [who, c] of Object.entries(callers)) {
    const sent = await a.call('POST', '/api/send_message', { headers: c.headers, body: { to: 'carol', body: `chat from ${who}` } });
    t.equal(sent.status, 202, who);
    const id = String(sent.body.message_id);
    const got = await a.call('GET', `/api/messages/${id}`, { headers: c.headers });
    t.equal(got.status, 200);
    t.same((got.body.message as { sent_by: unknown }).sent_by, c.sentBy, `${who}: GET /api/messages/:id names the sender`);
    const timeline = got.body.timeline as Array<{ source: string; sent_by: unknown }>;
    t.same(timeline[0]?.sent_by, c.sentBy, `${who}: the first timeline entry names the sender`);
    const list = await a.call('GET', `/api/conversation/${String(sent.body.conversation_id)}/messages`, { headers: c.headers });
    const listed = (list.body.messages as Array<{ id: string; sent_by: unknown }>).find((m) => m.id === id);
    t.same(listed?.sent_by, c.sentBy, `${who}: the conversation's list names the sender`);
  }
  const rows = await a.g.db.db.selectFrom('messages').select(['body', 'sent_by', 'sent_by_source', 'from_contact']).execute();
  const by = (body: string) => rows.find((r) => r.body === body);
  t.match(by('chat from session'), { sent_by: callers.session.sentBy.id, sent_by_source: 'user' });
  t.match(by('chat from token'), { sent_by: callers.token.sentBy.id, sent_by_source: 'user' });
  t.match(by('chat from bootstrap'), { sent_by: null, sent_by_source: 'api-token' });

  t.equal(by('chat from session')?.from_contact, 'Ada Lovelace', "a person's chat message is from their name");
  t.equal(by('chat from token')?.from_contact, 'Bo Agent', "a personal token's chat message is from its owner's name");
  t.equal(by('chat from bootstrap')?.from_contact, 'Front Desk', 'the bootstrap token sends as HATCH_SENDER_NAME');
  const given = await a.call('POST', '/api/send_message', {
    headers: callers.session.headers,
    body: { to: 'carol', from: 'Support', body: 'explicit from' },
  });
  t.equal(given.status, 202);
  t.equal(
    (await a.g.db.db.selectFrom('messages').select('from_contact').where('body', '=', 'explicit from').executeTakeFirst())?.from_contact,
    'Support',
    'a given `from` wins',
  );

  const convs = await a.call('GET', '/api/conversations', { headers: BOOTSTRAP });
  t.equal(convs.status, 200, 'the conversation list answers (its last message carries sent_by)');
});

t.test('a retry records who retried it; the message keeps its sender; non-human entries have sent_by null', async (t) => {
  const a = await accountsGateway(t, { env });
  const { callers } = await people(a);
  const sent = await a.call('POST', '/api/send_message', {
    headers: callers.session.headers,
    body: { to: '+14155550100', body: 'an sms' },
  });
  t.equal(sent.status, 202);
  const id = String(sent.body.message_id);
  // The relay publishes the job; no worker runs here. A provider's report, then the failure.
  await waitFor(async () => (await a.g.db.db.selectFrom('outbox').select('id').execute()).length === 0, { message: 'job published' });
  await applyMessageStatus(a.g.db.db, id, { status: 'sending', source: 'worker' });
  await applyMessageStatus(a.g.db.db, id, { status: 'failed', source: 'twilio_callback', providerCode: '30003' });
  for (const [who, c] of Object.entries(callers)) {
    await a.g.db.db.updateTable('messages').set({ status: 'failed' }).where('id', '=', id).execute();
    const retried = await a.call('POST', `/api/messages/${id}/retry`, { headers: c.headers });
    t.equal(retried.status, 202, `${who} retries`);
  }
  const got = await a.call('GET', `/api/messages/${id}`, { headers: BOOTSTRAP });
  t.same((got.body.message as { sent_by: unknown }).sent_by, callers.session.sentBy, 'the message is still sent by its sender');
  const timeline = got.body.timeline as Array<{ source: string; sent_by: unknown }>;
  t.same(
    timeline.filter((e) => e.source === 'retry').map((e) => e.sent_by),
    [callers.session.sentBy, callers.token.sentBy, callers.bootstrap.sentBy],
    'each retry entry names who retried',
  );
  t.same(timeline.find((e) => e.source === 'twilio_callback')?.sent_by, null, "a provider's report has no person");
  t.same(timeline.find((e) => e.source === 'worker')?.sent_by, null, "the worker's entry has no person");

  // The outbox's re-queue of a stalled job leaves an 'outbox' entry.
  await waitFor(async () => (await a.g.db.db.selectFrom('outbox').select('id').execute()).length === 0, { message: 'jobs published' });
  await a.g.db.db.updateTable('messages').set({ status: 'queued' }).where('id', '=', id).execute();
  t.equal((await requeueStalled(a.g.db.db, { staleMs: 0, limit: 10 })).length, 1);
  const sources = await a.g.db.db
    .selectFrom('status_events')
    .select(['source', 'sent_by', 'sent_by_source'])
    .where('message_id', '=', id)
    .orderBy('id')
    .execute();
  t.match(
    sources.map((s) => [s.source, s.sent_by, s.sent_by_source]),
    [
      ['api', callers.session.sentBy.id, 'user'],
      ['worker', null, 'worker'],
      ['twilio_callback', null, 'provider'],
      ['retry', callers.session.sentBy.id, 'user'],
      ['retry', callers.token.sentBy.id, 'user'],
      ['retry', null, 'api-token'],
      ['outbox', null, 'outbox'],
    ],
    'every timeline row records its source of attribution',
  );
});

t.test('emails and their timeline name the sender', async (t) => {
  const a = await accountsGateway(t, { env });
  const { callers } = await people(a);
  for (const [who, c] of Object.entries(callers)) {
    const sent = await a.call('POST', '/api/send_email', {
      headers: c.headers,
      body: { to_email: 'ann@example.com', subject: `from ${who}`, body: 'hello' },
    });
    t.equal(sent.status, 202, who);
    const got = await a.call('GET', `/api/emails/${String(sent.body.email_id)}`, { headers: c.headers });
    t.same((got.body.email as { sent_by: unknown }).sent_by, c.sentBy, `${who}: GET /api/emails/:id names the sender`);
    t.same((got.body.timeline as Array<{ sent_by: unknown }>)[0]?.sent_by, c.sentBy, `${who}: its timeline entry too`);
    const list = await a.call('GET', '/api/emails', { headers: c.headers });
    const listed = (list.body.emails as Array<{ id: string; sent_by: unknown }>).find((e) => e.id === sent.body.email_id);
    t.same(listed?.sent_by, c.sentBy, `${who}: the email list names the sender`);
  }
});

t.test('an inbound SMS (as the Twilio webhook stores it) has no sender and no audit row', async (t) => {
  const a = await accountsGateway(t, { env });
  const id = newRecordId();
  const [from, to] = ['+14155550111', SMS_FROM];
  await acceptMessages(a.g.db.db, [
    {
      message: {
        id,
        conversation_id: newRecordId(),
        from_contact: from,
        to_contact: to,
        body: 'hi',
        channel: 'sms',
        direction: 'inbound',
        status: 'received',
      },
      conversation: { participants: [from, to].sort() as [string, string], channel: 'sms', at: new Date() },
      source: 'twilio_inbound',
      outbox: false,
    },
  ]);
  const got = await a.call('GET', `/api/messages/${id}`, { headers: BOOTSTRAP });
  t.equal((got.body.message as { sent_by: unknown }).sent_by, null);
  t.equal((got.body.timeline as Array<{ sent_by: unknown }>)[0]?.sent_by, null);
  t.match(await a.g.db.db.selectFrom('messages').select(['sent_by', 'sent_by_source']).where('id', '=', id).executeTakeFirst(), {
    sent_by: null,
    sent_by_source: 'webhook',
  });
  t.equal((await a.g.db.db.selectFrom('audit_events').select('id').execute()).length, 0, 'no audit row');
});

t.test('rows from before accounts answer sent_by null', async (t) => {
  const a = await accountsGateway(t, { env });
  const sent = await a.call('POST', '/api/send_message', { headers: BOOTSTRAP, body: { to: 'carol', body: 'old' } });
  const id = String(sent.body.message_id);
  await a.g.db.db.updateTable('messages').set({ sent_by: null, sent_by_source: null }).where('id', '=', id).execute();
  await a.g.db.db.updateTable('status_events').set({ sent_by: null, sent_by_source: null }).where('message_id', '=', id).execute();
  const got = await a.call('GET', `/api/messages/${id}`, { headers: BOOTSTRAP });
  t.equal((got.body.message as { sent_by: unknown }).sent_by, null);
  t.equal((got.body.timeline as Array<{ sent_by: unknown }>)[0]?.sent_by, null);
});

t.test('audit rows for message sent, email sent and message retried: ids only, never a body', async (t) => {
  const a = await accountsGateway(t, { env });
  const { callers } = await people(a);
  const SECRET_BODY = 'the body must never reach the audit trail 7f3a';
  // Concurrent sends from three callers: group-committed together, each keeps its own actor.
  const sends = await Promise.all(
    Array.from({ length: 30 }, (_, i) => {
      const c = Object.values(callers)[i % 3] as (typeof callers)['session'];
      return a.call('POST', '/api/send_message', { headers: c.headers, body: { to: `guest${i}`, body: `${SECRET_BODY} ${i}` } });
    }),
  );
  t.ok(sends.every((s) => s.status === 202));
  const sms = await a.call('POST', '/api/send_message', {
    headers: callers.token.headers,
    body: { to: '+14155550100', body: SECRET_BODY },
  });
  const smsId = String(sms.body.message_id);
  await a.g.db.db.updateTable('messages').set({ status: 'failed' }).where('id', '=', smsId).execute();
  t.equal((await a.call('POST', `/api/messages/${smsId}/retry`, { headers: callers.session.headers })).status, 202);
  const email = await a.call('POST', '/api/send_email', {
    headers: callers.bootstrap.headers,
    body: { to_email: 'ann@example.com', subject: SECRET_BODY, body: SECRET_BODY },
  });

  const audit = await a.call('GET', '/api/audit?limit=200', { headers: callers.session.headers });
  const events = audit.body.events as Array<{
    kind: string;
    actor_id: string | null;
    actor_label: string | null;
    subject: Record<string, unknown>;
  }>;
  const sentRows = events.filter((e) => e.kind === 'message_sent');
  t.equal(sentRows.length, 31, 'one message_sent row per send');
  const messages = await a.g.db.db.selectFrom('messages').select(['id', 'conversation_id', 'sent_by']).execute();
  for (const m of messages) {
    const row = sentRows.find((e) => e.subject.message_id === m.id);
    t.same(row?.subject, { message_id: m.id, conversation_id: m.conversation_id }, 'ids only');
    t.equal(row?.actor_id, m.sent_by, 'the actor is the sender');
  }
  t.match(
    sentRows.find((e) => e.actor_id === null),
    { actor_label: 'API' },
    'the bootstrap token is labelled API',
  );
  t.match(
    events.find((e) => e.kind === 'message_retried'),
    {
      actor_id: callers.session.sentBy.id,
      actor_label: 'ada@example.com',
      subject: { message_id: smsId },
    },
  );
  t.match(
    events.find((e) => e.kind === 'email_sent'),
    { actor_id: null, actor_label: 'API', subject: { email_id: email.body.email_id } },
  );
  const dump = await a.g.db.sql<Array<{ t: string }>>`SELECT coalesce(string_agg(a::text, ' '), '') AS t FROM audit_events a`;
  t.ok(dump[0]?.t.includes('message_sent'), 'the dump holds the rows');
  t.notMatch(dump[0]?.t ?? '', SECRET_BODY.slice(0, 20), 'no body in any audit row');
});

/**
 * Messaging API (contract "HTTP API"): send an SMS or a chat message, list conversations and
 * messages, a message with its delivery timeline, retry a failed SMS.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  checkParticipant,
  countSmsSegments,
  ConversationPage,
  ErrorBody,
  IdParams,
  isUuid,
  MessagePage,
  MessageWithTimeline,
  PageQuery,
  RetryResponse,
  SendMessageBody,
  SendMessageResponse,
  SMS_BODY_MAX,
  type Conversation,
  type ErrorDetail,
} from '@hatch/contracts';
import { conversationIdFor, newRecordId } from '@hatch/contracts/node';
import {
  findConversation,
  findMessage,
  findTimeline,
  insertOutbox,
  insertStatusEvent,
  listConversationMessages,
  listConversations,
  takeSmsQuota,
  updateMessage,
  type Db,
  type MessageRow,
} from '@hatch/db';
import { HttpError } from '../errors.js';
import { completeIdempotency } from '../idempotency.js';
import { createdKey, pageOf } from '../cursor.js';
import { toApiMessage, toTimelineEntry } from '../present.js';
import { attributionOf, senderNames } from '../attribution.js';
import { auditRow, type Audit } from '../audit.js';
import type { OutboxRelay } from '../outbox-relay.js';
import type { SendBatcher } from '../send-batcher.js';
import { checkSmsCountry, smsDailyLimitReached, type SmsGuard } from '../sms-guard.js';

export interface MessageRouteDeps {
  db: Db;
  relay: OutboxRelay;
  /** group commit of sends */
  sends: SendBatcher;
  /** SMS sender number (TWILIO_PHONE_NUMBER) when configured */
  smsFrom?: string;
  /** chat sender when `from` is not given and the caller is the bootstrap token (HATCH_SENDER_NAME); a person sends as their name */
  chatFrom: string;
  /** allowed countries and daily limit of SMS (the batcher takes the limit with each write) */
  smsGuard: SmsGuard;
  /** retries are audited through it (sends are audited by their batch's own statement) */
  audit: Audit;
}

// Line feeds and tabs are text; every other control character (and CR: CRLF is refused
// anywhere, contract) is not.
const BODY_FORBIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f]/;

function invalid(field: string, message: string): HttpError {
  return new HttpError('INVALID_REQUEST', `${field} ${message}`, { details: [{ field, message }] });
}

/**
 * A chat message's sender when `from` is not given: the person's name (issue 18), or
 * HATCH_SENDER_NAME for the bootstrap token and for a name that is not a valid participant (a
 * name that looks like a phone number, say).
 */
function defaultChatFrom(personName: string | undefined, fallback: string): string {
  if (personName === undefined) return fallback;
  const c = checkParticipant(personName);
  return c.ok && c.kind === 'name' ? c.value : fallback;
}

function parseId(raw: string, what: string): string {
  if (!isUuid(raw)) throw invalid('params.id', `must be a ${what} id (a UUID)`);
  return raw.toLowerCase();
}

export function messageRoutes(instance: FastifyInstance, deps: MessageRouteDeps): void {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>();
  const { db } = deps;

  app.post(
    '/send_message',
    {
      schema: {
        tags: ['messages'],
        operationId: 'sendMessage',
        summary: 'Send an SMS (to an E.164 number) or a chat message (to a contact name)',
        body: SendMessageBody,
        response: { 202: SendMessageResponse, '4xx': ErrorBody },
      },
      config: { idempotent: true, openapi: { errors: ['RECIPIENT_OPTED_OUT', 'SMS_COUNTRY_NOT_ALLOWED', 'SMS_DAILY_LIMIT_REACHED'] } },
    },
    async (req, reply) => {
      const problems: ErrorDetail[] = [];
      const to = checkParticipant(req.body.to);
      if (!to.ok) problems.push({ field: 'body.to', message: to.reason });
      const body = req.body.body;
      if (BODY_FORBIDDEN.test(body))
        problems.push({ field: 'body.body', message: 'must not contain control characters (CR or CRLF included)' });
      if ([...body].length > SMS_BODY_MAX) problems.push({ field: 'body.body', message: `must be at most ${SMS_BODY_MAX} characters` });
      const channel = to.ok && to.kind === 'phone' ? 'sms' : 'chat';
      let from: string | undefined;
      if (req.body.from !== undefined) {
        const f = checkParticipant(req.body.from);
        if (!f.ok) problems.push({ field: 'body.from', message: f.reason });
        else if (channel === 'sms' && f.kind !== 'phone')
          problems.push({ field: 'body.from', message: 'must be an E.164 phone number to send an SMS' });
        else from = f.value;
      } else if (channel === 'sms') {
        if (deps.smsFrom) from = deps.smsFrom;
        else problems.push({ field: 'body.from', message: 'is required: no TWILIO_PHONE_NUMBER is configured' });
      } else from = defaultChatFrom(req.caller?.userId ? req.caller.name : undefined, deps.chatFrom);
      if (problems.length || !to.ok || !from) {
        const first = problems[0] as ErrorDetail;
        throw new HttpError('INVALID_REQUEST', `${first.field} ${first.message}`, { details: problems });
      }
      if (channel === 'sms') checkSmsCountry(deps.smsGuard, to.value, 'body.to');
      const id = newRecordId();
      const conversationId = conversationIdFor(from, to.value);
      const status = channel === 'sms' ? 'queued' : 'stored';
      const response: SendMessageResponse = { success: true, message_id: id, conversation_id: conversationId, status };
      const audited = auditRow({ kind: 'message_sent', actor: req.caller });
      const outcome = await deps.sends.accept({
        message: {
          id,
          conversation_id: conversationId,
          from_contact: from,
          to_contact: to.value,
          body,
          channel,
          direction: 'outbound',
          status,
          segments: channel === 'sms' ? countSmsSegments(body).segments : null,
        },
        conversation: { participants: [from, to.value].sort() as [string, string], channel, at: new Date() },
        source: 'api',
        attribution: attributionOf(req.caller),
        // written by the batch's statement itself: no round trip per send (ids only, never the body)
        audit: { kind: audited.kind, actor_id: audited.actor_id, actor_label: audited.actor_label },
        outbox: channel === 'sms',
        idempotency: req.idempotency ? { scope: req.idempotency.scope, key: req.idempotency.key, status: 202, body: response } : undefined,
      });
      if (!outcome.accepted && outcome.reason === 'sms_daily_limit') throw smsDailyLimitReached(deps.smsGuard);
      if (!outcome.accepted) {
        throw new HttpError('RECIPIENT_OPTED_OUT', `${to.value} has opted out of messages (texted STOP); they must text START first`, {
          details: [{ field: 'body.to', message: 'has opted out' }],
        });
      }
      if (req.idempotency) req.idempotency.completed = true;
      if (outcome.outbox) deps.relay.kick([outcome.outbox]);
      return reply.code(202).send(response);
    },
  );

  app.get(
    '/conversations',
    {
      schema: {
        tags: ['messages'],
        operationId: 'listConversations',
        summary: 'Conversations, the most recently active first',
        querystring: PageQuery,
        response: { 200: ConversationPage },
      },
    },
    async (req) => {
      const { rows: page, next_cursor } = await pageOf(
        req.query,
        (p) => listConversations(db.db, p),
        (c) => ({ at: c.last_message_at, id: c.id }),
      );
      const lastIds = page.map((c) => c.last_message_id).filter((x): x is string => x !== null);
      const lasts = lastIds.length ? await db.db.selectFrom('messages').selectAll().where('id', 'in', lastIds).execute() : [];
      const byId = new Map<string, MessageRow>(lasts.map((m) => [m.id, m]));
      const names = await senderNames(db.db, lasts);
      const conversations: Conversation[] = page.map((c) => {
        const last = c.last_message_id ? byId.get(c.last_message_id) : undefined;
        return {
          conversation_id: c.id,
          participants: c.participants,
          channel: c.channel,
          last_message: last ? toApiMessage(last, names) : null,
          message_count: c.message_count,
          updated_at: c.last_message_at.toISOString(),
        };
      });
      return { conversations, next_cursor };
    },
  );

  app.get(
    '/conversation/:id/messages',
    {
      schema: {
        tags: ['messages'],
        operationId: 'listConversationMessages',
        summary: "A conversation's messages, the newest first",
        params: IdParams,
        querystring: PageQuery,
        response: { 200: MessagePage },
      },
      config: { openapi: { errors: ['NOT_FOUND'] } },
    },
    async (req) => {
      const id = parseId(req.params.id, 'conversation');
      // the cursor is checked first (a bad one is a 400 even for an unknown conversation), then the conversation
      const { rows, next_cursor } = await pageOf(
        req.query,
        async (page) => {
          if (!(await findConversation(db.db, id))) throw new HttpError('NOT_FOUND', 'no such conversation');
          return listConversationMessages(db.db, id, page);
        },
        createdKey,
      );
      const names = await senderNames(db.db, rows);
      return { messages: rows.map((m) => toApiMessage(m, names)), next_cursor };
    },
  );

  app.get(
    '/messages/:id',
    {
      schema: {
        tags: ['messages'],
        operationId: 'getMessage',
        summary: 'A message with its delivery timeline',
        params: IdParams,
        response: { 200: MessageWithTimeline },
      },
      config: { openapi: { errors: ['NOT_FOUND'] } },
    },
    async (req) => {
      const id = parseId(req.params.id, 'message');
      const m = await findMessage(db.db, id);
      if (!m) throw new HttpError('NOT_FOUND', 'no such message');
      const timeline = await findTimeline(db.db, { messageId: id });
      const names = await senderNames(db.db, [m, ...timeline]);
      return { message: toApiMessage(m, names), timeline: timeline.map((e) => toTimelineEntry(e, names)) };
    },
  );

  app.post(
    '/messages/:id/retry',
    {
      schema: {
        tags: ['messages'],
        operationId: 'retryMessage',
        summary: 'Send a failed SMS again',
        params: IdParams,
        response: { 202: RetryResponse },
      },
      config: {
        idempotent: true,
        openapi: { errors: ['NOT_FOUND', 'NOT_RETRYABLE', 'SMS_COUNTRY_NOT_ALLOWED', 'SMS_DAILY_LIMIT_REACHED'] },
      },
    },
    async (req, reply) => {
      const id = parseId(req.params.id, 'message');
      const outbox = await db.db.transaction().execute(async (tx) => {
        const m = await tx.selectFrom('messages').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
        if (!m) throw new HttpError('NOT_FOUND', 'no such message');
        if (m.channel !== 'sms' || m.status !== 'failed') {
          throw new HttpError(
            'NOT_RETRYABLE',
            `only a failed SMS can be retried (this one is ${m.channel === 'sms' ? m.status : 'a chat message'})`,
          );
        }
        // A retry sends the SMS again and is paid again: it passes the spend guard like a new
        // send (the allowed countries may have narrowed since), its slot taken in this transaction.
        checkSmsCountry(deps.smsGuard, m.to_contact);
        if ((await takeSmsQuota(tx, deps.smsGuard.dailyLimit, 1)) === 0) throw smsDailyLimitReached(deps.smsGuard);
        await updateMessage(tx, id, { status: 'queued', error_code: null, error_message: null, claimed_at: null });
        await insertStatusEvent(tx, {
          message_id: id,
          status: 'queued',
          source: 'retry',
          ...attributionOf(req.caller),
          detail: m.error_code ? `after ${m.error_code}` : null,
        });
        // A new Nats-Msg-Id: the first job's id may still sit in JetStream's dedupe window.
        const row = await insertOutbox(tx, { kind: 'sms', entity_id: id, dedupe_id: `${id}:retry:${m.attempts}:${Date.now()}` });
        await completeIdempotency(tx, req.idempotency, 202, { success: true, message_id: id, status: 'queued' });
        return row;
      });
      deps.relay.kick([outbox]);
      await deps.audit({ kind: 'message_retried', actor: req.caller, subject: { message_id: id } });
      return reply.code(202).send({ success: true, message_id: id, status: 'queued' });
    },
  );
}

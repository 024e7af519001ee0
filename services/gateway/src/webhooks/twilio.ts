/**
 * Twilio webhooks: delivery status callbacks and inbound SMS. Both are form-encoded and signed
 * (X-Twilio-Signature: HMAC-SHA1 of the full public URL + sorted POST params with the auth
 * token). The URL is rebuilt from PUBLIC_URL, never from the Host header, because behind a load
 * balancer the Host and scheme we see are not the ones Twilio signed (docs/reliability.md#twilio).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import formbody from '@fastify/formbody';
import { parse as parseForm } from 'node:querystring';
// Only the SDK's signature module: the package root loads the whole REST client (≈ 40 modules,
// axios, jsonwebtoken; +6 MB heap, +0.4 s start) that the gateway never calls (bench P7).
import { validateRequest } from 'twilio/lib/webhooks/webhooks.js';
import type { Counter } from 'prom-client';
import Type, { type TSchema } from 'typebox';
import { E164_PATTERN, isE164, isUuid, MESSAGE_STATUSES, type MessageStatus } from '@hatch/contracts';
import { conversationIdFor, newRecordId } from '@hatch/contracts/node';
import {
  acceptMessages,
  applyMessageStatuses,
  deleteOptOut,
  findMessageByProviderSid,
  insertOptOut,
  insertStatusEvent,
  messageStatusChange,
  type Db,
  type StatusChange,
} from '@hatch/db';
import type { Logger } from '@hatch/log';
import { groupedWrites } from '@hatch/service';
import type { Registry } from 'prom-client';
import { HttpError, retryLater } from '../errors.js';

/** Twilio's opt-out keywords (docs/reliability.md#twilio), matched on the whole trimmed body. */
export const OPT_OUT_WORDS = new Set(['STOP', 'STOPALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT']);
export const OPT_IN_WORDS = new Set(['START', 'UNSTOP']);

/**
 * What one forged request can cost (issue 14). The SDK's validateRequest runs on the event loop
 * and, for a bad signature, hashes the URL + every parameter for several URL variants; measured
 * here (Node 20) per request: 0.04 ms for a real callback (~20 parameters, < 1 KB), but 21 ms
 * for a 64 KiB body of ~9,500 tiny parameters (sorting and concatenating them). Capped at
 * 32 KiB and 200 parameters the worst case is 0.4 ms. Real requests stay far below both: an
 * inbound SMS of 1,600 CJK characters is ~15 KB encoded, and Twilio sends about 20 parameters
 * (plus MediaUrlN / MediaContentTypeN, up to 10 of each, and geo fields).
 */
export const TWILIO_WEBHOOK_BODY_LIMIT = 32 * 1024;
export const TWILIO_WEBHOOK_MAX_PARAMS = 200;

function parseTwilioForm(body: string): Record<string, unknown> {
  let pairs = 1;
  for (let i = body.indexOf('&'); i !== -1; i = body.indexOf('&', i + 1)) {
    if (++pairs > TWILIO_WEBHOOK_MAX_PARAMS)
      throw new HttpError('INVALID_REQUEST', `a Twilio webhook has at most ${TWILIO_WEBHOOK_MAX_PARAMS} form parameters`);
  }
  // Counted above, so no silent truncation (querystring's default maxKeys is 1000).
  return parseForm(body, '&', '=', { maxKeys: 0 });
}

export interface TwilioWebhookDeps {
  db: Db;
  log: Logger;
  registry: Registry;
  /** hatch_webhook_rejected_total{provider} */
  rejected: Counter<'provider'>;
  publicUrl: string;
  authToken?: string;
}

type Params = Record<string, string>;

// What the OpenAPI document shows of Twilio's form posts (Twilio sends more parameters). Not
// validated by a schema: the signature covers the parameters as sent, so it is checked first.
const TwilioForm = <P extends Record<string, TSchema>>(props: P) => Type.Object(props, { additionalProperties: Type.String() });
const StatusCallbackForm = TwilioForm({
  MessageSid: Type.String(),
  MessageStatus: Type.String({ description: 'queued, sent, delivered, undelivered, failed (other values go on the timeline only)' }),
  ErrorCode: Type.Optional(Type.String()),
  ErrorMessage: Type.Optional(Type.String()),
});
const InboundSmsForm = TwilioForm({
  MessageSid: Type.String(),
  From: Type.String({ pattern: E164_PATTERN }),
  To: Type.String({ pattern: E164_PATTERN }),
  Body: Type.String({ description: 'STOP, UNSUBSCRIBE, … opt the sender out; START, UNSTOP opt them back in' }),
  NumSegments: Type.Optional(Type.String()),
});
const WEBHOOK_ERRORS = ['FORBIDDEN', 'RATE_LIMITED', 'SERVICE_UNAVAILABLE'] as const;
const FORM = 'application/x-www-form-urlencoded';

function isMessageStatus(s: string): s is MessageStatus {
  return (MESSAGE_STATUSES as readonly string[]).includes(s);
}

export function twilioWebhooks(app: FastifyInstance, deps: TwilioWebhookDeps): void {
  const log = deps.log.child({ component: 'twilio-webhooks' });
  // Concurrent status callbacks: one statement per group; each answers once its group committed.
  const applyStatus = groupedWrites(deps, {
    name: 'message_status',
    write: (changes: StatusChange[]) => applyMessageStatuses(deps.db.db, changes),
    full: () => retryLater('SERVICE_UNAVAILABLE', 'too many status callbacks waiting to be stored; retry shortly', 1),
  });

  app.register(async (scope) => {
    // Form bodies are parsed only here: the JSON API stays JSON-only (415 otherwise).
    await scope.register(formbody, { bodyLimit: TWILIO_WEBHOOK_BODY_LIMIT, parser: parseTwilioForm });

    function verify(req: FastifyRequest): Params {
      const params = (req.body ?? {}) as Params;
      const signature = req.headers['x-twilio-signature'];
      const url = `${deps.publicUrl}${req.url}`;
      const ok = typeof signature === 'string' && deps.authToken !== undefined && validateRequest(deps.authToken, signature, url, params);
      if (!ok) {
        deps.rejected.inc({ provider: 'twilio' });
        log.warn(
          { path: req.url.split('?')[0], hasSignature: typeof signature === 'string', configured: deps.authToken !== undefined },
          'twilio webhook signature refused',
        );
        throw new HttpError('FORBIDDEN', 'invalid Twilio signature');
      }
      // The handlers read each parameter as one string. The form parser makes a repeated name an
      // array (Twilio never repeats one: refused), and PostgreSQL text cannot hold NUL (dropped,
      // as Twilio never sends one either). Both were 500s, found by test/fuzz.test.ts.
      const out = Object.create(null) as Params;
      for (const [k, v] of Object.entries(params)) {
        if (typeof v !== 'string') throw new HttpError('INVALID_REQUEST', 'a Twilio webhook parameter appears more than once');
        out[k] = v.replaceAll('\u0000', '');
      }
      return out;
    }

    const statusDocs = {
      errors: WEBHOOK_ERRORS,
      security: 'twilioSignature',
      body: { contentType: FORM, schema: StatusCallbackForm },
      querystring: Type.Object({
        mid: Type.Optional(Type.String({ description: 'our message id, set in the callback URL we give Twilio' })),
      }),
      responses: { 204: { type: 'null', description: 'recorded (or ignored: an unknown message)' } },
    } as const;
    const statusRoute = {
      bodyLimit: TWILIO_WEBHOOK_BODY_LIMIT,
      schema: { tags: ['webhooks'], operationId: 'twilioStatus', summary: 'Twilio delivery status callback' },
      config: { openapi: statusDocs },
    };
    scope.post('/webhooks/twilio/status', statusRoute, async (req, reply) => {
      const p = verify(req);
      const query = req.query as Record<string, string | undefined>;
      const sid = p.MessageSid ?? p.SmsSid;
      const reported = (p.MessageStatus ?? p.SmsStatus ?? '').toLowerCase();
      // Our id rides in the callback URL (?mid=), so a callback that beats the worker's own
      // status write still finds its message.
      let id = query.mid && isUuid(query.mid) ? query.mid : undefined;
      if (!id && sid) id = (await findMessageByProviderSid(deps.db.db, sid))?.id;
      if (!id) {
        log.warn({ sid }, 'status callback for an unknown message');
        return reply.code(204).send();
      }
      const errorCode = p.ErrorCode ? String(p.ErrorCode) : null;
      const token = req.headers['i-twilio-idempotency-token'];
      // One statement either way (no transaction round trips: several callbacks per SMS, bench P2);
      // a status is grouped with the concurrent callbacks' into one statement.
      if (isMessageStatus(reported)) {
        await applyStatus(
          messageStatusChange(id, {
            status: reported,
            source: 'twilio_callback',
            providerCode: errorCode,
            providerEventId: typeof token === 'string' ? `twilio:${token}` : null,
            onMove:
              reported === 'failed' || reported === 'undelivered'
                ? { error_code: errorCode, error_message: p.ErrorMessage ?? (errorCode ? `Twilio error ${errorCode}` : null) }
                : undefined,
            always: sid ? { provider_sid: sid } : undefined,
          }),
        );
      } else {
        // accepted, scheduled, read, …: kept on the timeline, not a status of ours
        await insertStatusEvent(deps.db.db, {
          message_id: id,
          status: reported || 'unknown',
          source: 'twilio_callback',
          provider_code: errorCode,
        }).catch((err: { code?: string }) => {
          // A `mid` that names no message (a foreign-key violation, which was a 500): like an unknown SID.
          if (err.code !== '23503') throw err;
          log.warn({ mid: id }, 'status callback for an unknown message');
        });
      }
      return reply.code(204).send();
    });

    const smsDocs = {
      errors: WEBHOOK_ERRORS,
      security: 'twilioSignature',
      body: { contentType: FORM, schema: InboundSmsForm },
      responses: {
        200: {
          description: 'stored (or a replay, ignored): an empty TwiML answer',
          content: { 'text/xml': { schema: { type: 'string' } } },
        },
      },
    } as const;
    const smsRoute = {
      bodyLimit: TWILIO_WEBHOOK_BODY_LIMIT,
      schema: { tags: ['webhooks'], operationId: 'twilioInboundSms', summary: 'Twilio inbound SMS' },
      config: { openapi: smsDocs },
    };
    scope.post('/webhooks/twilio/sms', smsRoute, async (req, reply) => {
      const p = verify(req);
      const sid = p.MessageSid ?? p.SmsMessageSid ?? p.SmsSid;
      const from = (p.From ?? '').trim();
      const to = (p.To ?? '').trim();
      const body = p.Body ?? '';
      if (!sid || !isE164(from) || !isE164(to)) throw new HttpError('INVALID_REQUEST', 'inbound SMS needs MessageSid, From and To');
      const xml = () => reply.code(200).type('text/xml').send('<?xml version="1.0" encoding="UTF-8"?><Response/>');
      const id = newRecordId();
      const conversationId = conversationIdFor(from, to);
      const keyword = body.trim().toUpperCase();
      // Twilio's segment count, when it is one: a negative or out-of-range number broke the
      // column's check / integer range (a 500, found by test/fuzz.test.ts).
      const segments = /^[0-9]{1,4}$/.test(p.NumSegments ?? '') ? Number(p.NumSegments) || null : null;
      try {
        await deps.db.db.transaction().execute(async (tx) => {
          await acceptMessages(tx, [
            {
              message: {
                id,
                conversation_id: conversationId,
                from_contact: from,
                to_contact: to,
                body,
                channel: 'sms',
                direction: 'inbound',
                status: 'received',
                provider_sid: sid,
                segments,
              },
              conversation: { participants: [from, to].sort() as [string, string], channel: 'sms', at: new Date() },
              source: 'twilio_inbound',
              outbox: false,
            },
          ]).catch((err: Error & { code?: string }) => {
            throw err.code === '23505' ? new DuplicateInbound() : err;
          });
          if (OPT_OUT_WORDS.has(keyword)) await insertOptOut(tx, { phone: from, reason: keyword, source: 'inbound' });
          else if (OPT_IN_WORDS.has(keyword)) await deleteOptOut(tx, from);
        });
      } catch (err) {
        if (err instanceof DuplicateInbound) {
          log.info({ sid }, 'inbound SMS replay ignored');
          return xml();
        }
        throw err;
      }
      log.info({ sid, messageId: id }, 'inbound SMS stored');
      return xml();
    });
  });
}

class DuplicateInbound extends Error {}

/**
 * Twilio webhooks: delivery status callbacks and inbound SMS. Both are form-encoded and signed
 * (X-Twilio-Signature: HMAC-SHA1 of the full public URL + sorted POST params with the auth
 * token). The URL is rebuilt from PUBLIC_URL, never from the Host header, because behind a load
 * balancer the Host and scheme we see are not the ones Twilio signed (reliability.md §4.3).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import formbody from '@fastify/formbody';
// Only the SDK's signature module: the package root loads the whole REST client (≈ 40 modules,
// axios, jsonwebtoken; +6 MB heap, +0.4 s start) that the gateway never calls (bench P7).
import { validateRequest } from 'twilio/lib/webhooks/webhooks.js';
import { Counter, type Registry } from 'prom-client';
import { isE164, isUuid, MESSAGE_STATUSES, type MessageStatus } from '@hatch/contracts';
import { conversationIdFor, newRecordId } from '@hatch/contracts/node';
import { acceptMessages, applyMessageStatus, deleteOptOut, findMessageByProviderSid, insertOptOut, insertStatusEvent, type Db } from '@hatch/db';
import type { Logger } from '@hatch/log';
import { HttpError } from '../errors.js';

/** Twilio's opt-out keywords (reliability.md §4.7), matched on the whole trimmed body. */
export const OPT_OUT_WORDS = new Set(['STOP', 'STOPALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT']);
export const OPT_IN_WORDS = new Set(['START', 'UNSTOP']);

export interface TwilioWebhookDeps {
  db: Db;
  log: Logger;
  registry: Registry;
  publicUrl: string;
  authToken?: string;
}

type Params = Record<string, string>;

function isMessageStatus(s: string): s is MessageStatus {
  return (MESSAGE_STATUSES as readonly string[]).includes(s);
}

export function twilioWebhooks(app: FastifyInstance, deps: TwilioWebhookDeps): void {
  const rejected = new Counter({ name: 'hatch_webhook_rejected_total', help: 'webhooks refused for a bad or missing signature', labelNames: ['provider'], registers: [deps.registry] });
  const log = deps.log.child({ component: 'twilio-webhooks' });

  app.register(async (scope) => {
    // Form bodies are parsed only here: the JSON API stays JSON-only (415 otherwise).
    await scope.register(formbody, { bodyLimit: 64 * 1024 });

    function verify(req: FastifyRequest): Params {
      const params = (req.body ?? {}) as Params;
      const signature = req.headers['x-twilio-signature'];
      const url = `${deps.publicUrl}${req.url}`;
      const ok = typeof signature === 'string' && deps.authToken !== undefined && validateRequest(deps.authToken, signature, url, params);
      if (!ok) {
        rejected.inc({ provider: 'twilio' });
        log.warn({ path: req.url.split('?')[0], hasSignature: typeof signature === 'string', configured: deps.authToken !== undefined }, 'twilio webhook signature refused');
        throw new HttpError('FORBIDDEN', 'invalid Twilio signature');
      }
      return params;
    }

    scope.post('/webhooks/twilio/status', async (req, reply) => {
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
      // One statement either way (no transaction round trips: two callbacks per SMS, bench P2).
      if (isMessageStatus(reported)) {
        await applyMessageStatus(deps.db.db, id, {
          status: reported,
          source: 'twilio_callback',
          providerCode: errorCode,
          providerEventId: typeof token === 'string' ? `twilio:${token}` : null,
          onMove: reported === 'failed' || reported === 'undelivered' ? { error_code: errorCode, error_message: p.ErrorMessage ?? (errorCode ? `Twilio error ${errorCode}` : null) } : undefined,
          always: sid ? { provider_sid: sid } : undefined,
        });
      } else {
        // accepted, scheduled, read, …: kept on the timeline, not a status of ours
        await insertStatusEvent(deps.db.db, { message_id: id, status: reported || 'unknown', source: 'twilio_callback', provider_code: errorCode });
      }
      return reply.code(204).send();
    });

    scope.post('/webhooks/twilio/sms', async (req, reply) => {
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
      try {
        await deps.db.db.transaction().execute(async (tx) => {
          await acceptMessages(tx, [
            {
              message: { id, conversation_id: conversationId, from_contact: from, to_contact: to, body, channel: 'sms', direction: 'inbound', status: 'received', provider_sid: sid, segments: p.NumSegments ? Number(p.NumSegments) || null : null },
              conversation: { participants: [from, to].sort() as [string, string], channel: 'sms', at: new Date() },
              source: 'twilio_inbound',
              outbox: false,
            },
          ]).catch((err: { code?: string }) => {
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

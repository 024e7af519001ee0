/**
 * SendGrid Event Webhook (reliability.md §5.4, issue 7): a JSON array of events. With
 * SENDGRID_WEBHOOK_PUBLIC_KEY set, the ECDSA signature over timestamp + the RAW body is
 * verified with the SDK's EventWebhook helper (so this scope parses JSON itself, from the raw
 * bytes) and a timestamp more than 10 minutes off is refused as a replay: 403, a metric, no
 * change. Without a key (contract: "when a key is configured") events are accepted unsigned and
 * a warning is logged at start.
 * Each event is matched to its email by our id in custom_args (`email_id`), else by the
 * sg_message_id prefix (the send's X-Message-Id); stored once per sg_event_id; statuses only
 * move forward (processed → sent, deferred, delivered, bounce → bounced, dropped); opens,
 * clicks and other engagement events are timeline entries only. Answers 204.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { EventWebhook, EventWebhookHeader } from '@sendgrid/eventwebhook';
import { Counter, type Registry } from 'prom-client';
import { isUuid, SENDGRID_EMAIL_ID_ARG, type EmailStatus } from '@hatch/contracts';
import { applyEmailStatus, findEmailByProviderMessageId, type Db } from '@hatch/db';
import type { Logger } from '@hatch/log';
import { HttpError } from '../errors.js';

/** SendGrid documents no tolerance; the issue sets 10 minutes against replays. */
export const SENDGRID_TIMESTAMP_TOLERANCE_S = 600;
/** Event batches are at most a few MB; past this the request is 413. */
export const SENDGRID_WEBHOOK_BODY_LIMIT = 5 * 1024 * 1024;
const MAX_EVENTS = 10_000;

const STATUS_OF: Record<string, EmailStatus> = {
  processed: 'sent',
  deferred: 'deferred',
  delivered: 'delivered',
  bounce: 'bounced',
  blocked: 'bounced',
  dropped: 'dropped',
};

export interface SendGridWebhookDeps {
  db: Db;
  log: Logger;
  registry: Registry;
  /** base64 DER (as SendGrid shows it) or PEM */
  publicKey?: string;
}

type SgEvent = Record<string, unknown>;

function str(v: unknown): string | null {
  return typeof v === 'string' && v.length > 0 ? v : typeof v === 'number' ? String(v) : null;
}

function toPem(key: string): string {
  if (key.includes('BEGIN')) return key.replace(/\\n/g, '\n');
  const body = key.replace(/\s+/g, '').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN PUBLIC KEY-----\n${body}\n-----END PUBLIC KEY-----\n`;
}

function rejectedCounter(registry: Registry): Counter<'provider'> {
  const name = 'hatch_webhook_rejected_total';
  // One metric for every provider's refused webhooks (the Twilio routes may have made it).
  return (registry.getSingleMetric(name) as Counter<'provider'> | undefined) ?? new Counter({ name, help: 'webhooks refused for a bad or missing signature', labelNames: ['provider'], registers: [registry] });
}

export function sendgridWebhooks(app: FastifyInstance, deps: SendGridWebhookDeps): void {
  const log = deps.log.child({ component: 'sendgrid-webhooks' });
  const rejected = rejectedCounter(deps.registry);
  const helper = new EventWebhook();
  const key = deps.publicKey ? helper.convertPublicKeyToECDSA(toPem(deps.publicKey)) : undefined;
  if (!key) log.warn('SENDGRID_WEBHOOK_PUBLIC_KEY is not set: SendGrid events are accepted unsigned');
  const sigHeader = EventWebhookHeader.SIGNATURE().toLowerCase();
  const tsHeader = EventWebhookHeader.TIMESTAMP().toLowerCase();

  function verify(req: FastifyRequest, raw: Buffer): void {
    if (!key) return;
    const signature = req.headers[sigHeader];
    const timestamp = req.headers[tsHeader];
    let why: string | undefined;
    if (typeof signature !== 'string' || typeof timestamp !== 'string') why = 'missing signature headers';
    else if (!/^\d{1,12}$/.test(timestamp) || Math.abs(Date.now() / 1000 - Number(timestamp)) > SENDGRID_TIMESTAMP_TOLERANCE_S) why = 'stale or malformed timestamp';
    else {
      try {
        if (!helper.verifySignature(key, raw, signature, timestamp)) why = 'bad signature';
      } catch {
        why = 'malformed signature';
      }
    }
    if (why) {
      rejected.inc({ provider: 'sendgrid' });
      log.warn({ why }, 'sendgrid event webhook refused');
      throw new HttpError('FORBIDDEN', 'invalid SendGrid event webhook signature');
    }
  }

  async function resolveEmailId(ev: SgEvent): Promise<string | undefined> {
    const arg = str(ev[SENDGRID_EMAIL_ID_ARG]);
    if (arg && isUuid(arg)) return arg.toLowerCase();
    const sgMessageId = str(ev.sg_message_id);
    if (!sgMessageId) return undefined;
    const prefix = sgMessageId.split('.')[0] ?? '';
    return prefix ? (await findEmailByProviderMessageId(deps.db.db, prefix))?.id : undefined;
  }

  async function apply(ev: SgEvent): Promise<'applied' | 'duplicate' | 'unmatched'> {
    const emailId = await resolveEmailId(ev);
    if (!emailId) return 'unmatched';
    const name = (str(ev.event) ?? 'unknown').slice(0, 40);
    const status = STATUS_OF[name];
    const eventId = str(ev.sg_event_id);
    const reason = str(ev.reason) ?? str(ev.response);
    const code = str(ev.status) ?? (name === 'bounce' ? str(ev.type) : null);
    const recipient = str(ev.email);
    const detail = [recipient, name === 'click' ? str(ev.url) : reason].filter(Boolean).join(': ') || null;
    const sgMessageId = str(ev.sg_message_id);
    const r = await applyEmailStatus(deps.db.db, emailId, {
      status: status ?? name,
      timelineOnly: status === undefined,
      source: 'sendgrid_event',
      providerCode: code?.slice(0, 100) ?? null,
      detail: detail?.slice(0, 300) ?? null,
      providerEventId: eventId ? `sendgrid:${eventId}` : null,
      onMove: status === 'bounced' || status === 'dropped' ? { error_code: (code ?? name).slice(0, 100), error_message: (reason ?? name).slice(0, 500) } : undefined,
      always: name === 'processed' && sgMessageId ? { provider_message_id: sgMessageId.split('.')[0] ?? null } : undefined,
    });
    if (!r.row) return 'unmatched';
    return r.duplicate ? 'duplicate' : 'applied';
  }

  app.register(async (scope) => {
    // The signature covers the raw bytes: this scope keeps them and parses JSON itself.
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: SENDGRID_WEBHOOK_BODY_LIMIT }, (_req, body, done) => done(null, body));

    scope.post('/webhooks/sendgrid/events', { bodyLimit: SENDGRID_WEBHOOK_BODY_LIMIT }, async (req, reply) => {
      const raw = req.body as Buffer;
      verify(req, raw);
      let events: unknown;
      try {
        events = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new HttpError('INVALID_REQUEST', 'request body is not valid JSON');
      }
      if (!Array.isArray(events) || events.length > MAX_EVENTS || !events.every((e) => typeof e === 'object' && e !== null && !Array.isArray(e))) {
        throw new HttpError('INVALID_REQUEST', `expected a JSON array of at most ${MAX_EVENTS} event objects`);
      }
      const counts = { applied: 0, duplicate: 0, unmatched: 0 };
      for (const ev of events as SgEvent[]) counts[await apply(ev)]++;
      if (counts.unmatched) log.warn({ unmatched: counts.unmatched }, 'sendgrid events for unknown emails ignored');
      log.debug(counts, 'sendgrid events');
      return reply.code(204).send();
    });
  });
}

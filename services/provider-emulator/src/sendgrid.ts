/**
 * SendGrid v3 mail send stand-in (docs/reliability.md#sendgrid): `POST /v3/mail/send` with SendGrid's
 * validation and answers, then the Event Webhook: signed JSON arrays of events for every
 * recipient, custom_args spread into each event as SendGrid does.
 *
 * Events, one webhook batch per stage, `callbackDelayMs` apart:
 *   normal    processed → delivered
 *   bounce    processed → bounce (type "bounce", 5.1.1)
 *   dropped   dropped (never attempted: no processed)
 *   deferred  processed → deferred → delivered (a deferral is temporary; SendGrid retries)
 * A fault with `match.to` changes the outcome of that recipient only. Batches are posted
 * independently, so a retried one can arrive after a later one, as with SendGrid: receivers
 * must not assume order (dedupe on sg_event_id, never downgrade a status).
 *
 * Stricter than SendGrid in one way on purpose: CR or LF in a header-bound field (subject,
 * names, content types, custom headers) is refused with 400, so a header-injection bug in
 * Hatch fails a test instead of passing silently (T12, docs/reliability.md#fault-tests).
 * `mail_settings.sandbox_mode.enable: true` answers 200 with no events (docs/reliability.md#sendgrid).
 *
 * The routes and events are here; the request validation is in sendgrid-validation.ts, the
 * error bodies and fault answers in sendgrid-errors.ts.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { BoundedLog } from './bounded-log.js';
import { answerProcessed, appliedFault, faultSelects, processedDespite, type AppliedFault, type DeliveryOutcome } from './faults.js';
import { sendgridEventId, sendgridEventMessageId, sendgridMessageId } from './ids.js';
import { secretsEqual, type SendGridSigner } from './signing.js';
import { faultAnswer, sendgridErrors, type SendGridError } from './sendgrid-errors.js';
import { validateMailSend, type Recipient } from './sendgrid-validation.js';
import type { ProviderContext } from './provider-context.js';
import { WebhookQueue, type DeliveryRecord, type WebhookFormat } from './webhook-queue.js';

/** Total message size limit is 30 MB; the body limit leaves room for JSON overhead. */
export const MAIL_SEND_BODY_LIMIT = 31 * 1024 * 1024;

export interface SendGridSettings {
  apiKey: string;
  /** the account's Event Webhook URL; null: no events are posted */
  webhookUrl: string | null;
}

export interface SendGridContext extends ProviderContext {
  settings: SendGridSettings;
  signer: SendGridSigner;
}

export type SendGridEvent = Record<string, unknown> & {
  event: string;
  email: string;
  sg_event_id: string;
  sg_message_id: string;
  timestamp: number;
};

export type WebhookBatchRecord = { events: string[] } & DeliveryRecord;

/** One mail send request as the emulator saw and answered it. */
export interface EmailRecord {
  seq: number;
  receivedAt: string;
  /** SendGrid took it: events follow (unless sandboxed) */
  accepted: boolean;
  /** the status the client was answered; null while held (hang) or when dropped */
  httpStatus: number | null;
  fault: AppliedFault | null;
  messageId: string | null;
  sandbox: boolean;
  /** the v3 request body exactly as received */
  request: unknown;
  /** every to/cc/bcc address, in request order */
  recipients: string[];
  errors: SendGridError[] | null;
  /** every event posted to the webhook, in order */
  events: SendGridEvent[];
  webhooks: WebhookBatchRecord[];
}

export interface SendGridState {
  emails: BoundedLog<EmailRecord>;
}

export function createSendGridState(maxRecords: number, maxBytes: number): SendGridState {
  return { emails: new BoundedLog<EmailRecord>(maxRecords, maxBytes) };
}

// ---- events -------------------------------------------------------------------------------------

type Stage = Array<{ r: Recipient; index: number; event: 'processed' | 'delivered' | 'bounce' | 'dropped' | 'deferred' }>;

/** The event stages of one accepted send (see the file comment). */
function plan(recipients: Recipient[], outcomeOf: (r: Recipient) => DeliveryOutcome | 'delivered'): Stage[] {
  const stages: Stage[] = [[], [], []];
  recipients.forEach((r, index) => {
    const outcome = outcomeOf(r);
    const [s0, s1, s2] = stages as [Stage, Stage, Stage];
    if (outcome === 'dropped') {
      s0.push({ r, index, event: 'dropped' });
      return;
    }
    s0.push({ r, index, event: 'processed' });
    if (outcome === 'deferred') {
      s1.push({ r, index, event: 'deferred' });
      s2.push({ r, index, event: 'delivered' });
    } else {
      s1.push({ r, index, event: outcome === 'bounce' ? 'bounce' : 'delivered' });
    }
  });
  return stages.filter((s) => s.length > 0);
}

const EVENT_DETAILS: Record<string, Record<string, unknown>> = {
  processed: {},
  delivered: { response: '250 2.0.0 OK emulator', ip: '127.0.0.1', tls: 1 },
  bounce: {
    type: 'bounce',
    status: '5.1.1',
    reason: '550 5.1.1 The email account that you tried to reach does not exist.',
    bounce_classification: 'Invalid Address',
    ip: '127.0.0.1',
    tls: 1,
  },
  dropped: { reason: 'Bounced Address', status: '5.0.0' },
  deferred: { response: '451 4.7.1 Temporarily deferred, try again later', attempt: '1', ip: '127.0.0.1', tls: 1 },
};

/** The Event Webhook: a JSON array of events, ECDSA-signed over timestamp + raw body. */
function eventWebhook(signer: SendGridSigner): WebhookFormat<SendGridEvent[]> {
  return {
    encode: (events) => JSON.stringify(events),
    headers: (_url, _events, body) => {
      const timestamp = String(Math.floor(Date.now() / 1000));
      return {
        'content-type': 'application/json',
        'user-agent': 'SendGrid Event API',
        'x-twilio-email-event-webhook-signature': signer.sign(timestamp, body),
        'x-twilio-email-event-webhook-timestamp': timestamp,
      };
    },
  };
}

// ---- routes -------------------------------------------------------------------------------------

export function registerSendGrid(app: FastifyInstance, ctx: SendGridContext, state: SendGridState): void {
  const { settings, log } = ctx;
  // Batches are posted independently: a retried one can arrive after a later one (file comment).
  const batches = new WebhookQueue({
    bg: ctx.bg,
    client: ctx.webhooks,
    policy: ctx.webhook,
    log,
    format: eventWebhook(ctx.signer),
    task: 'sendgrid event webhook',
    refused: 'sendgrid event webhook not accepted',
  });

  function authError(header: string | undefined): [number, { errors: SendGridError[] }] | undefined {
    if (!header) return [401, sendgridErrors([null, 'authorization required'])];
    if (!secretsEqual(header, `Bearer ${settings.apiKey}`)) {
      return [401, sendgridErrors([null, 'The provided authorization grant is invalid, expired, or revoked'])];
    }
    return undefined;
  }

  async function deliverEvents(rec: EmailRecord, stages: Stage[], categories: string[]): Promise<void> {
    for (const stage of stages) {
      await ctx.bg.sleep(ctx.callbackDelayMs);
      const timestamp = Math.floor(Date.now() / 1000);
      const events: SendGridEvent[] = stage.map(({ r, index, event }) => ({
        // custom_args first: SendGrid's own fields win a name clash
        ...r.customArgs,
        email: r.email,
        timestamp,
        'smtp-id': `<${rec.messageId}@emulator.sendgrid.net>`,
        event,
        ...(categories.length ? { category: categories } : {}),
        sg_event_id: sendgridEventId(),
        sg_message_id: sendgridEventMessageId(rec.messageId ?? '', index),
        ...EVENT_DETAILS[event],
      }));
      rec.events.push(...events);
      if (settings.webhookUrl) {
        const url = settings.webhookUrl;
        batches.send(() => ({
          url,
          payload: events,
          fields: { events: events.map((e) => e.event) },
          records: rec.webhooks,
          context: { messageId: rec.messageId },
        }));
      }
    }
  }

  app.post('/v3/mail/send', { bodyLimit: MAIL_SEND_BODY_LIMIT }, async (req, reply: FastifyReply) => {
    const now = new Date().toISOString();
    const bytes = Number(req.headers['content-length'] ?? 0) || 0;
    const record = (fields: Partial<EmailRecord>): EmailRecord =>
      state.emails.add(
        (seq) => ({
          seq,
          receivedAt: now,
          accepted: false,
          httpStatus: null,
          fault: null,
          messageId: null,
          sandbox: false,
          request: req.body,
          recipients: [],
          errors: null,
          events: [],
          webhooks: [],
          ...fields,
        }),
        bytes,
      );
    const refuse = (
      status: number,
      body: { errors: SendGridError[] },
      extra: Partial<EmailRecord> = {},
      headers: Record<string, string> = {},
    ) => {
      record({ httpStatus: status, errors: body.errors, ...extra });
      return reply.code(status).headers(headers).send(body);
    };

    const denied = authError(req.headers.authorization);
    if (denied) return refuse(...denied);
    const v = validateMailSend(req.body);
    if ('errors' in v) return refuse(400, { errors: v.errors });
    const recipients = v.mail.recipients.map((r) => r.email);

    const fault = ctx.faults.take('sendgrid', recipients);
    if (fault && !processedDespite(fault)) {
      const [status, body, headers] = faultAnswer(fault);
      return refuse(status, body, { fault: appliedFault(fault), recipients }, headers);
    }

    const sandbox = v.mail.sandbox;
    const rec = record({ accepted: true, fault: appliedFault(fault), messageId: sendgridMessageId(), sandbox, recipients });
    if (!sandbox) {
      const outcome = (r: Recipient): DeliveryOutcome | 'delivered' =>
        fault?.delivery && faultSelects(fault, r.email) ? fault.delivery : 'delivered';
      const stages = plan(v.mail.recipients, outcome);
      ctx.bg.run('sendgrid events', () => deliverEvents(rec, stages, v.mail.categories));
    }
    log.debug({ messageId: rec.messageId, recipients: recipients.length, sandbox, fault: fault?.kind }, 'sendgrid mail accepted');

    return answerProcessed(fault, req, reply, ctx.bg, {
      error: (f) => {
        const [status, body, headers] = faultAnswer(f);
        rec.httpStatus = status;
        return reply.code(status).headers(headers).send(body);
      },
      // Sandbox mode answers 200 and sends nothing (docs/reliability.md#sendgrid); a real send is 202 + X-Message-Id.
      ok: () => {
        rec.httpStatus = sandbox ? 200 : 202;
        if (sandbox) return reply.code(200).send();
        return reply.code(202).header('x-message-id', rec.messageId).send();
      },
    });
  });
}

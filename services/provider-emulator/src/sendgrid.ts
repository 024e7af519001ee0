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
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Logger } from '@hatch/log';
import { BoundedLog } from './bounded-log.js';
import type { Background } from './background.js';
import { answerProcessed, appliedFault, faultSelects, processedDespite, type AppliedFault, type DeliveryOutcome, type Fault, type FaultStore } from './faults.js';
import { sendgridEventId, sendgridEventMessageId, sendgridMessageId } from './ids.js';
import type { SendGridSigner } from './signing.js';
import type { WebhookClient, WebhookPolicy } from './webhook-client.js';
import { WebhookQueue, type DeliveryRecord, type WebhookFormat } from './webhook-queue.js';

/** SendGrid's documented limits (docs/reliability.md#sendgrid). */
export const MAX_RECIPIENTS = 1000;
export const MAX_PERSONALIZATIONS = 1000;
/** Total message size limit is 30 MB; the body limit leaves room for JSON overhead. */
export const MAIL_SEND_BODY_LIMIT = 31 * 1024 * 1024;
const MAX_CUSTOM_ARGS_BYTES = 10_000;
const HELP = 'http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html';

export interface SendGridSettings {
  apiKey: string;
  /** the account's Event Webhook URL; null: no events are posted */
  webhookUrl: string | null;
}

export interface SendGridContext {
  settings: SendGridSettings;
  signer: SendGridSigner;
  log: Logger;
  bg: Background;
  faults: FaultStore;
  webhook: WebhookPolicy;
  webhooks: WebhookClient;
  callbackDelayMs: number;
}

export interface SendGridError {
  message: string;
  field: string | null;
  help: string | null;
}

export type SendGridEvent = Record<string, unknown> & { event: string; email: string; sg_event_id: string; sg_message_id: string; timestamp: number };

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

export function sendgridErrors(...errors: Array<[string | null, string]>): { errors: SendGridError[] } {
  return { errors: errors.map(([field, message]) => ({ message, field, help: null })) };
}

// ---- validation -------------------------------------------------------------------------------

type Json = Record<string, unknown>;

interface Recipient {
  email: string;
  personalization: number;
  customArgs: Record<string, string>;
}

interface ValidMail {
  recipients: Recipient[];
  categories: string[];
  sandbox: boolean;
}

const CRLF = /[\r\n]/;
// Deliberately plain: local@domain.tld with no spaces, brackets or quotes.
const EMAIL = /^[^\s@"<>(),;:\\[\]]+@[^\s@"<>(),;:\\[\]]+\.[^\s@"<>(),;:\\[\]]+$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function isValidEmail(v: string): boolean {
  const at = v.lastIndexOf('@');
  return EMAIL.test(v) && v.length <= 254 && at <= 64;
}

class Problems {
  readonly list: SendGridError[] = [];
  add(field: string | null, message: string, anchor?: string): void {
    this.list.push({ message, field, help: anchor ? `${HELP}#${anchor}` : null });
  }
}

function checkAddress(v: unknown, field: string, p: Problems, anchor: string): string | undefined {
  if (!isObject(v) || typeof v.email !== 'string') {
    p.add(`${field}.email`, 'The email parameter is required and must be a valid email address.', anchor);
    return undefined;
  }
  if (!isValidEmail(v.email)) p.add(`${field}.email`, 'Does not contain a valid address.', anchor);
  if (v.name !== undefined && (typeof v.name !== 'string' || CRLF.test(v.name))) {
    p.add(`${field}.name`, 'The name must be a string without CR or LF characters.', anchor);
  }
  return v.email;
}

function checkStringMap(v: unknown, field: string, p: Problems, what: string): Record<string, string> {
  if (v === undefined) return {};
  if (!isObject(v)) {
    p.add(field, `The ${what} must be an object of string values.`);
    return {};
  }
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') p.add(`${field}.${k}`, `The ${what} values must be strings.`);
    else if (CRLF.test(k) || (what === 'headers' && CRLF.test(val))) p.add(`${field}.${k}`, `The ${what} may not contain CR or LF characters.`);
    else out[k] = val;
  }
  return out;
}

function checkSubject(v: unknown, field: string, p: Problems): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'string' || v.length === 0) {
    p.add(field, 'The subject must be a string at least one character in length.', 'message.subject');
    return false;
  }
  if (CRLF.test(v)) p.add(field, 'The subject may not contain CR or LF characters.', 'message.subject');
  return true;
}

/** Validates a v3 mail send body; every problem is reported, as SendGrid does. */
export function validateMailSend(body: unknown): { mail: ValidMail } | { errors: SendGridError[] } {
  const p = new Problems();
  if (!isObject(body)) return { errors: [{ message: 'Bad Request', field: null, help: null }] };

  const templateId = typeof body.template_id === 'string' && body.template_id.length > 0;
  const messageArgs = checkStringMap(body.custom_args, 'custom_args', p, 'custom_args');
  checkStringMap(body.headers, 'headers', p, 'headers');

  const recipients: Recipient[] = [];
  let everyPersonalizationHasSubject = true;
  const personalizations = body.personalizations;
  if (!Array.isArray(personalizations) || personalizations.length === 0) {
    p.add('personalizations', 'The personalizations field is required and must have at least one personalization.', '-Personalizations-Errors');
    everyPersonalizationHasSubject = false;
  } else if (personalizations.length > MAX_PERSONALIZATIONS) {
    p.add('personalizations', `The personalizations field may not have more than ${MAX_PERSONALIZATIONS} personalizations.`, '-Personalizations-Errors');
  } else {
    personalizations.forEach((pers: unknown, i) => {
      const f = `personalizations.${i}`;
      if (!isObject(pers)) {
        p.add(f, 'Each personalization must be an object.', '-Personalizations-Errors');
        everyPersonalizationHasSubject = false;
        return;
      }
      if (!checkSubject(pers.subject, `${f}.subject`, p)) everyPersonalizationHasSubject = false;
      const args = { ...messageArgs, ...checkStringMap(pers.custom_args, `${f}.custom_args`, p, 'custom_args') };
      if (Buffer.byteLength(JSON.stringify(args)) > MAX_CUSTOM_ARGS_BYTES) {
        p.add(`${f}.custom_args`, `The custom_args of a personalization may not exceed ${MAX_CUSTOM_ARGS_BYTES} bytes.`);
      }
      checkStringMap(pers.headers, `${f}.headers`, p, 'headers');
      if (pers.send_at !== undefined && !Number.isInteger(pers.send_at)) p.add(`${f}.send_at`, 'The send_at parameter must be a unix timestamp (integer).');
      const seen = new Map<string, string>();
      for (const kind of ['to', 'cc', 'bcc'] as const) {
        const list = pers[kind];
        if (list === undefined && kind !== 'to') continue;
        if (!Array.isArray(list) || list.length === 0) {
          p.add(
            `${f}.${kind}`,
            kind === 'to'
              ? 'The to array is required for all personalization objects, and must have at least one email object with a valid email address.'
              : `The ${kind} array must have at least one email object with a valid email address.`,
            `message.personalizations.${kind}`,
          );
          continue;
        }
        list.forEach((addr: unknown, j) => {
          const email = checkAddress(addr, `${f}.${kind}.${j}`, p, `message.personalizations.${kind}`);
          if (email === undefined) return;
          const key = email.toLowerCase();
          if (seen.has(key)) {
            p.add(f, `Each email address in the personalization block should be unique between to, cc, and bcc. We found the first duplicate instance of [${email}] in the ${f}.${kind} field.`, 'message.recipient_errors');
          }
          seen.set(key, kind);
          recipients.push({ email, personalization: i, customArgs: args });
        });
      }
    });
    if (recipients.length > MAX_RECIPIENTS) {
      p.add('personalizations', `The total number of recipients must be no more than ${MAX_RECIPIENTS}. This includes all recipients defined within the to, cc, and bcc parameters, across each of the personalizations.`, 'message.recipient_errors');
    }
  }

  if (body.from === undefined) {
    p.add('from.email', 'The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.', 'message.from');
  } else {
    checkAddress(body.from, 'from', p, 'message.from');
  }
  if (body.reply_to !== undefined) checkAddress(body.reply_to, 'reply_to', p, 'message.reply_to');
  if (body.reply_to_list !== undefined) {
    if (body.reply_to !== undefined) p.add('reply_to_list', 'reply_to and reply_to_list cannot both be used.', 'message.reply_to');
    if (!Array.isArray(body.reply_to_list) || body.reply_to_list.length === 0) p.add('reply_to_list', 'The reply_to_list must be an array of email objects.', 'message.reply_to');
    else body.reply_to_list.forEach((a: unknown, j) => checkAddress(a, `reply_to_list.${j}`, p, 'message.reply_to'));
  }

  const hasSubject = checkSubject(body.subject, 'subject', p);
  if (!hasSubject && body.subject === undefined && !everyPersonalizationHasSubject && !templateId) {
    p.add('subject', 'The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.', 'message.subject');
  }

  const content = body.content;
  if (content === undefined) {
    if (!templateId) {
      p.add('content', 'Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required.', 'message.content');
    }
  } else if (!Array.isArray(content) || content.length === 0) {
    p.add('content', 'The content parameter must be an array with at least one content block.', 'message.content');
  } else {
    const types: string[] = [];
    content.forEach((c: unknown, i) => {
      if (!isObject(c) || typeof c.type !== 'string' || c.type.length === 0 || CRLF.test(c.type)) {
        p.add(`content.${i}.type`, 'The content type must be a string at least one character in length.', 'message.content.type');
      } else {
        types.push(c.type.toLowerCase());
      }
      if (!isObject(c) || typeof c.value !== 'string' || c.value.length === 0) {
        p.add(`content.${i}.value`, 'The content value must be a string at least one character in length.', 'message.content.value');
      }
    });
    const plain = types.indexOf('text/plain');
    const html = types.indexOf('text/html');
    if ((plain > 0) || (html > 0 && !(plain === 0 && html === 1))) {
      p.add('content', 'If present, text/plain and text/html may only be provided in this order, before any other content.', 'message.content');
    }
  }

  if (body.attachments !== undefined) {
    if (!Array.isArray(body.attachments)) p.add('attachments', 'The attachments parameter must be an array.', 'message.attachments');
    else {
      body.attachments.forEach((a: unknown, i) => {
        const f = `attachments.${i}`;
        if (!isObject(a)) return p.add(f, 'Each attachment must be an object.', 'message.attachments');
        if (typeof a.content !== 'string' || a.content.length === 0) p.add(`${f}.content`, 'The attachment content is required.', 'message.attachments.content');
        else {
          const compact = a.content.replace(/\s+/g, '');
          if (compact.length % 4 !== 0 || !BASE64.test(compact)) p.add(`${f}.content`, 'The attachment content must be base64 encoded.', 'message.attachments.content');
        }
        if (typeof a.filename !== 'string' || a.filename.length === 0 || CRLF.test(a.filename)) p.add(`${f}.filename`, 'The attachment filename parameter is required.', 'message.attachments.filename');
        if (a.type !== undefined && (typeof a.type !== 'string' || a.type.length === 0 || CRLF.test(a.type))) p.add(`${f}.type`, 'The attachment type must be a string at least one character in length.', 'message.attachments.type');
        if (a.disposition !== undefined && a.disposition !== 'inline' && a.disposition !== 'attachment') {
          p.add(`${f}.disposition`, 'The disposition must be either "inline" or "attachment".', 'message.attachments.disposition');
        }
        if (a.disposition === 'inline' && (typeof a.content_id !== 'string' || a.content_id.length === 0)) {
          p.add(`${f}.content_id`, 'The content_id parameter is required if your attachment is inline.', 'message.attachments.content_id');
        }
      });
    }
  }

  let categories: string[] = [];
  if (body.categories !== undefined) {
    if (!Array.isArray(body.categories) || body.categories.some((c) => typeof c !== 'string' || c.length > 255)) {
      p.add('categories', 'The categories must be an array of strings of at most 255 characters.', 'message.categories');
    } else if (body.categories.length > 10) {
      p.add('categories', 'You may not have more than 10 categories per request.', 'message.categories');
    } else {
      categories = body.categories as string[];
    }
  }

  let sandbox = false;
  const mailSettings = body.mail_settings;
  if (isObject(mailSettings) && mailSettings.sandbox_mode !== undefined) {
    const sm = mailSettings.sandbox_mode;
    if (!isObject(sm) || typeof sm.enable !== 'boolean') p.add('mail_settings.sandbox_mode.enable', 'The sandbox_mode enable parameter must be a boolean.', 'message.mail_settings.sandbox_mode.enable');
    else sandbox = sm.enable;
  }

  return p.list.length ? { errors: p.list } : { mail: { recipients, categories, sandbox } };
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
  bounce: { type: 'bounce', status: '5.1.1', reason: '550 5.1.1 The email account that you tried to reach does not exist.', bounce_classification: 'Invalid Address', ip: '127.0.0.1', tls: 1 },
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
  const expectedAuth = Buffer.from(`Bearer ${settings.apiKey}`);
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
    const got = Buffer.from(header);
    if (got.length !== expectedAuth.length || !timingSafeEqual(got, expectedAuth)) {
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
        batches.send(() => ({ url, payload: events, fields: { events: events.map((e) => e.event) }, records: rec.webhooks, context: { messageId: rec.messageId } }));
      }
    }
  }

  function faultAnswer(f: Fault): [number, { errors: SendGridError[] }, Record<string, string>] {
    switch (f.kind) {
      case '429': {
        const reset = Math.floor(Date.now() / 1000) + (f.retryAfterSeconds ?? 1);
        return [429, sendgridErrors([null, f.message ?? 'too many requests']), { 'x-ratelimit-limit': '600', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(reset) }];
      }
      case '500':
        return [500, sendgridErrors([null, f.message ?? 'internal error']), {}];
      case '503':
        return [503, sendgridErrors([null, f.message ?? 'service unavailable']), f.retryAfterSeconds !== undefined ? { 'retry-after': String(f.retryAfterSeconds) } : {}];
      default: {
        const status = f.code ?? 400;
        const message = f.message ?? (status === 403 ? 'access forbidden' : status === 413 ? 'Payload Too Large' : 'Bad Request');
        return [status, sendgridErrors([null, message]), {}];
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
    const refuse = (status: number, body: { errors: SendGridError[] }, extra: Partial<EmailRecord> = {}, headers: Record<string, string> = {}) => {
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
      const outcome = (r: Recipient): DeliveryOutcome | 'delivered' => (fault?.delivery && faultSelects(fault, r.email) ? fault.delivery : 'delivered');
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

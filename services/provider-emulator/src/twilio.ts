/**
 * Twilio Programmable Messaging stand-in (docs/reliability.md#twilio): the Messages resource of the
 * 2010-04-01 REST API, signed status callbacks, and played inbound SMS.
 *
 * - Create answers synchronously with the Message resource (`queued`, or `accepted` with a
 *   Messaging Service and `num_segments: "0"`, as Twilio does) and then walks the status
 *   sequence in the background, `callbackDelayMs` per step. Per Twilio's docs no callback is
 *   sent for the initial status, so callbacks are sending → sent → delivered (a Messaging
 *   Service message also reports queued); a delivery fault ends in undelivered (after sent) or
 *   failed (after sending) with an ErrorCode. Each callback is signed (X-Twilio-Signature) and
 *   carries an I-Twilio-Idempotency-Token that stays the same across its retries.
 * - Fetch (`GET …/Messages/{Sid}.json`) and list (`GET …/Messages.json`, filtered by To, From
 *   and DateSent, newest first, paged) let a sender reconcile an unknown outcome. Twilio's
 *   resource does not expose the StatusCallback URL (so not Hatch's `?mid=` either); a sender
 *   matches on To/From/Body/time, and tests read the callback URL in `/_emulator/messages`.
 *   DateSent filters use date_sent, or date_created while the message is not sent yet: a
 *   reconciliation that skipped a message still queued would resend it (a duplicate SMS).
 */
import { randomUUID, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import Type, { type Static } from 'typebox';
import { Value } from 'typebox/value';
import { countSmsSegments, type SmsEncoding } from '@hatch/contracts';
import type { Logger } from '@hatch/log';
import { BoundedLog } from './bounded-log.js';
import type { Background } from './background.js';
import { answerProcessed, appliedFault, faultSelects, processedDespite, type AppliedFault, type Fault, type FaultStore } from './faults.js';
import { twilioSid } from './ids.js';
import { formBody, twilioSignature, type FormParams } from './signing.js';
import type { WebhookClient, WebhookPolicy, WebhookResult } from './webhook-client.js';
import { WebhookQueue, type DeliveryRecord, type WebhookFormat } from './webhook-queue.js';

export const API_VERSION = '2010-04-01';
/** Twilio's Body limit; counted in code points like the gateway's own check (contracts SMS_BODY_MAX). */
export const TWILIO_BODY_MAX = 1600;

const E164 = /^\+[1-9][0-9]{7,14}$/;
/** Alphanumeric sender ID: up to 11 letters, digits and spaces, at least one letter. */
const ALPHANUMERIC_SENDER = /^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$/;
const MESSAGING_SERVICE_SID = /^MG[0-9a-fA-F]{32}$/;

export interface TwilioSettings {
  accountSid: string;
  authToken: string;
  /** the emulated account's number: the default `To` of played inbound SMS */
  phoneNumber: string;
  /** where played inbound SMS are POSTed unless the admin call names another URL */
  inboundUrl: string;
}

export interface TwilioContext {
  settings: TwilioSettings;
  log: Logger;
  bg: Background;
  faults: FaultStore;
  webhook: WebhookPolicy;
  webhooks: WebhookClient;
  /** delay between status steps (and before the first callback) */
  callbackDelayMs: number;
}

export type CallbackRecord = { status: string } & DeliveryRecord;

/** One create request as the emulator saw and answered it. */
export interface MessageRecord {
  seq: number;
  receivedAt: string;
  /** a Message resource exists: Twilio would deliver it and callbacks fire */
  accepted: boolean;
  /** the status the client was answered; null while held (hang) or when dropped */
  httpStatus: number | null;
  fault: AppliedFault | null;
  /** every form parameter as received */
  params: FormParams;
  sid: string | null;
  to: string | null;
  from: string | null;
  messagingServiceSid: string | null;
  body: string | null;
  statusCallback: string | null;
  numSegments: number | null;
  encoding: SmsEncoding | null;
  /** current Twilio status of an accepted message */
  status: string | null;
  /** the refusal's Twilio code, or the delivery ErrorCode */
  errorCode: number | null;
  errorMessage: string | null;
  dateCreated: string;
  dateUpdated: string;
  dateSent: string | null;
  price: string | null;
  callbacks: CallbackRecord[];
}

export interface InboundRecord {
  seq: number;
  at: string;
  messageSid: string;
  url: string;
  params: FormParams;
  deliveries: WebhookResult[];
}

export interface TwilioState {
  messages: BoundedLog<MessageRecord>;
  inbound: BoundedLog<InboundRecord>;
  bySid: Map<string, MessageRecord>;
}

export function createTwilioState(maxRecords: number): TwilioState {
  const bySid = new Map<string, MessageRecord>();
  return {
    bySid,
    messages: new BoundedLog<MessageRecord>(maxRecords, Number.POSITIVE_INFINITY, (m) => {
      if (m.sid) bySid.delete(m.sid);
    }),
    inbound: new BoundedLog<InboundRecord>(maxRecords),
  };
}

// ---- errors ---------------------------------------------------------------------------------

export interface TwilioErrorBody {
  code: number;
  message: string;
  more_info: string;
  status: number;
}

export function twilioError(code: number, status: number, message: string): TwilioErrorBody {
  return { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status };
}

/** HTTP status and message of the Twilio codes faults are likely to name. */
const KNOWN_ERRORS: Record<number, [number, string]> = {
  20003: [401, 'Authenticate'],
  20404: [404, 'The requested resource was not found'],
  20429: [429, 'Too Many Requests'],
  20500: [500, 'Internal Server Error'],
  20503: [503, 'Service Unavailable'],
  14107: [400, 'SMS send rate limit exceeded'],
  21211: [400, "Invalid 'To' Phone Number"],
  21408: [400, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number"],
  21606: [400, "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination"],
  21608: [400, 'The number is unverified. Trial accounts cannot send messages to unverified numbers'],
  21610: [400, 'Attempt to send to unsubscribed recipient'],
  21611: [400, "This 'From' number has exceeded the maximum number of queued messages"],
  21612: [400, "The 'To' phone number is not currently reachable using the 'From' phone number via SMS"],
  21614: [400, "'To' number is not a valid mobile number"],
  21617: [400, 'The concatenated message body exceeds the 1600 character limit'],
};

/** ErrorCode descriptions of delivery failures (error_message of the resource). */
const DELIVERY_ERRORS: Record<number, string> = {
  30001: 'Queue overflow',
  30002: 'Account suspended',
  30003: 'Unreachable destination handset',
  30004: 'Message blocked',
  30005: 'Unknown destination handset',
  30006: 'Landline or unreachable carrier',
  30007: 'Message filtered',
  30008: 'Unknown error',
};

function faultError(f: Fault): TwilioErrorBody {
  const code = f.code ?? 20500;
  const known = KNOWN_ERRORS[code];
  const status = f.status ?? known?.[0] ?? 400;
  return twilioError(code, status, f.message ?? known?.[1] ?? `Emulated Twilio error ${code}`);
}

// ---- helpers --------------------------------------------------------------------------------

/** RFC 2822 in UTC, the format of Twilio's date_* fields ("Tue, 24 Nov 2026 17:49:22 +0000"). */
function rfc2822(iso: string | null): string | null {
  return iso === null ? null : new Date(iso).toUTCString().replace('GMT', '+0000');
}

/** Form fields as strings (repeated fields stay arrays); JSON bodies are tolerated the same way. */
function formParams(body: unknown): FormParams {
  const out: FormParams = {};
  if (body === null || typeof body !== 'object') return out;
  for (const [k, v] of Object.entries(body as Record<string, string | string[] | undefined>)) {
    if (Array.isArray(v)) out[k] = v.map(String);
    else if (v !== undefined && v !== null) out[k] = String(v);
  }
  return out;
}

function first(params: FormParams, key: string): string | undefined {
  const v = params[key];
  return Array.isArray(v) ? v[0] : v;
}

function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

function messageUri(accountSid: string, sid: string): string {
  return `/${API_VERSION}/Accounts/${accountSid}/Messages/${sid}.json`;
}

/** Twilio's webhooks (status callbacks, inbound SMS): signed form posts. */
function twilioWebhook(authToken: string): WebhookFormat<Record<string, string>> {
  return {
    encode: formBody,
    headers: (url, params) => ({
      'content-type': 'application/x-www-form-urlencoded',
      'user-agent': 'TwilioProxy/1.1',
      'x-twilio-signature': twilioSignature(authToken, url, params),
      // the same token on every retry of this event, so receivers can dedupe (docs/reliability.md#twilio)
      'i-twilio-idempotency-token': randomUUID(),
    }),
  };
}

/** The Message resource in Twilio's JSON shape. */
export function messageResource(m: MessageRecord, accountSid: string, opts: { creating?: boolean } = {}): Record<string, unknown> {
  const sid = m.sid ?? '';
  // With a Messaging Service the sender is picked later, so the create answer has no segment
  // count yet (docs/reliability.md#twilio); a later fetch has it.
  const segments = opts.creating && m.messagingServiceSid ? 0 : (m.numSegments ?? 0);
  return {
    account_sid: accountSid,
    api_version: API_VERSION,
    body: m.body,
    date_created: rfc2822(m.dateCreated),
    date_sent: rfc2822(m.dateSent),
    date_updated: rfc2822(m.dateUpdated),
    direction: 'outbound-api',
    error_code: m.status === 'undelivered' || m.status === 'failed' ? m.errorCode : null,
    error_message: m.status === 'undelivered' || m.status === 'failed' ? m.errorMessage : null,
    from: m.from,
    messaging_service_sid: m.messagingServiceSid,
    num_media: '0',
    num_segments: String(segments),
    price: m.price,
    price_unit: 'USD',
    sid,
    status: m.status,
    subresource_uris: {
      media: `/${API_VERSION}/Accounts/${accountSid}/Messages/${sid}/Media.json`,
      feedback: `/${API_VERSION}/Accounts/${accountSid}/Messages/${sid}/Feedback.json`,
    },
    to: m.to,
    uri: messageUri(accountSid, sid),
  };
}

type CreateInput = { to: string; from: string | null; messagingServiceSid: string | null; body: string; statusCallback: string | null };

/** Twilio's create validation, in the order Twilio reports the first problem. */
function validateCreate(params: FormParams): CreateInput | TwilioErrorBody {
  const to = first(params, 'To')?.trim();
  const from = first(params, 'From')?.trim() || null;
  const messagingServiceSid = first(params, 'MessagingServiceSid')?.trim() || null;
  const body = first(params, 'Body') ?? '';
  const statusCallback = first(params, 'StatusCallback')?.trim() || null;
  const hasMedia = params.MediaUrl !== undefined || params.ContentSid !== undefined;
  if (!to) return twilioError(21604, 400, "A 'To' phone number is required.");
  if (!E164.test(to)) return twilioError(21211, 400, `Invalid 'To' Phone Number: ${to}`);
  if (!from && !messagingServiceSid) return twilioError(21603, 400, "A 'From' phone number is required.");
  if (from && !E164.test(from) && !ALPHANUMERIC_SENDER.test(from)) return twilioError(21212, 400, `Invalid 'From' Phone Number: ${from}`);
  if (messagingServiceSid && !MESSAGING_SERVICE_SID.test(messagingServiceSid)) {
    return twilioError(21705, 400, `The Messaging Service Sid ${messagingServiceSid} is invalid.`);
  }
  if (from && from === to) return twilioError(21266, 400, "'To' and 'From' number cannot be the same");
  if (body.length === 0 && !hasMedia) return twilioError(21602, 400, 'Message body is required.');
  if ([...body].length > TWILIO_BODY_MAX) return twilioError(21617, 400, `The concatenated message body exceeds the ${TWILIO_BODY_MAX} character limit.`);
  if (statusCallback && !isHttpUrl(statusCallback)) return twilioError(21609, 400, `Invalid StatusCallback url: ${statusCallback}`);
  return { to, from, messagingServiceSid, body, statusCallback };
}

type DateRange = { min: number; max: number };

/** DateSent / DateSent< / DateSent> : a day (YYYY-MM-DD) or an instant; bounds inclusive. */
function dateFilter(query: Record<string, unknown>): DateRange | TwilioErrorBody {
  const range: DateRange = { min: Number.NEGATIVE_INFINITY, max: Number.POSITIVE_INFINITY };
  const DAY = 86_400_000;
  for (const key of ['DateSent', 'DateSent>', 'DateSent<'] as const) {
    const raw = query[key];
    if (typeof raw !== 'string' || raw === '') continue;
    const dayOnly = /^\d{4}-\d{2}-\d{2}$/.test(raw);
    let t = Date.parse(dayOnly ? `${raw}T00:00:00Z` : raw);
    if (!Number.isFinite(t)) return twilioError(20001, 400, `Invalid ${key}: ${raw}`);
    // DateSent= selects a day (Twilio documents day granularity); the bounds may be instants.
    const wholeDay = dayOnly || key === 'DateSent';
    if (key === 'DateSent') t -= t % DAY;
    const end = wholeDay ? t + DAY - 1 : t;
    if (key !== 'DateSent<') range.min = Math.max(range.min, t);
    if (key !== 'DateSent>') range.max = Math.min(range.max, end);
  }
  return range;
}

function intParam(raw: unknown, def: number, min: number, max: number): number | undefined {
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  return Number.isInteger(n) && n >= min && n <= max ? n : undefined;
}

// ---- routes ---------------------------------------------------------------------------------

const InboundPlay = Type.Object(
  {
    from: Type.String({ pattern: E164.source }),
    /** defaults to the emulated account's phone number */
    to: Type.Optional(Type.String({ minLength: 1 })),
    body: Type.String({ maxLength: TWILIO_BODY_MAX * 2 }),
    /** POST it a second time with the same MessageSid, as a Twilio webhook retry would */
    duplicate: Type.Optional(Type.Boolean()),
    /** defaults to the configured inbound URL */
    url: Type.Optional(Type.String({ pattern: '^https?://' })),
    messageSid: Type.Optional(Type.String({ pattern: '^(SM|MM)[0-9a-f]{32}$' })),
  },
  { additionalProperties: false },
);
export type InboundPlay = Static<typeof InboundPlay>;

export interface InboundResult {
  messageSid: string;
  url: string;
  deliveries: WebhookResult[];
}

export interface TwilioHandle {
  /** plays an inbound SMS (the admin route's behaviour, for library users) */
  playInbound(p: InboundPlay): Promise<InboundResult>;
}

export function registerTwilio(app: FastifyInstance, ctx: TwilioContext, state: TwilioState): TwilioHandle {
  const { settings, log } = ctx;
  const prefix = `/${API_VERSION}/Accounts/:AccountSid`;
  const callbacks = new WebhookQueue({
    bg: ctx.bg,
    client: ctx.webhooks,
    policy: ctx.webhook,
    log,
    format: twilioWebhook(settings.authToken),
    task: 'twilio status callbacks',
    refused: 'twilio status callback not accepted',
  });

  function send(reply: FastifyReply, status: number, body: unknown, headers: Record<string, string> = {}) {
    return reply.code(status).headers({ 'twilio-request-id': twilioSid('RQ'), ...headers }).send(body);
  }

  /** Basic auth with the account SID and auth token; the path must name that account. */
  function authError(req: FastifyRequest<{ Params: { AccountSid: string } }>): TwilioErrorBody | undefined {
    const header = req.headers.authorization;
    let ok = false;
    if (header?.startsWith('Basic ')) {
      const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      ok = colon > 0 && safeEqual(decoded.slice(0, colon), settings.accountSid) && safeEqual(decoded.slice(colon + 1), settings.authToken);
    }
    if (!ok) return twilioError(20003, 401, 'Authenticate');
    if (req.params.AccountSid !== settings.accountSid) {
      return twilioError(20404, 404, `The requested resource ${req.url.split('?')[0]} was not found`);
    }
    return undefined;
  }

  function sendError(reply: FastifyReply, err: TwilioErrorBody, headers: Record<string, string> = {}) {
    const extra = err.status === 401 ? { 'www-authenticate': 'Basic realm="Twilio API"', ...headers } : headers;
    return send(reply, err.status, err, extra);
  }

  /** Twilio's status walk for an accepted message, callbacks included. */
  function startLifecycle(m: MessageRecord, outcome: { final: 'delivered' | 'undelivered' | 'failed'; errorCode: number | null }) {
    const steps: string[] = m.status === 'accepted' ? ['queued', 'sending'] : ['sending'];
    if (outcome.final === 'failed') steps.push('failed');
    else steps.push('sent', outcome.final);
    // Callbacks of one message go out one at a time, in status order (a retried one holds the
    // next back): receivers must cope with out-of-order callbacks anyway (docs/reliability.md#twilio), but a
    // deterministic order keeps tests readable; forge reordered ones where that is the point.
    const lane = callbacks.lane();
    ctx.bg.run('twilio status sequence', async () => {
      for (const status of steps) {
        await ctx.bg.sleep(ctx.callbackDelayMs);
        const now = new Date().toISOString();
        m.status = status;
        m.dateUpdated = now;
        if (status === 'sent') {
          m.dateSent = now;
          m.price = `-${(0.0079 * (m.numSegments ?? 1)).toFixed(5)}`;
        }
        if (status === 'undelivered' || status === 'failed') {
          m.errorCode = outcome.errorCode ?? (status === 'failed' ? 30008 : 30003);
          m.errorMessage = DELIVERY_ERRORS[m.errorCode] ?? KNOWN_ERRORS[m.errorCode]?.[1] ?? 'Delivery failed';
        }
        const url = m.statusCallback;
        if (url) lane.send(() => ({ url, payload: statusParams(m, status), fields: { status }, records: m.callbacks, context: { sid: m.sid, status } }));
      }
    });
  }

  /** The status callback's parameters, built when it is sent. */
  function statusParams(m: MessageRecord, status: string): Record<string, string> {
    const params: Record<string, string> = {
      AccountSid: settings.accountSid,
      ApiVersion: API_VERSION,
      From: m.from ?? '',
      MessageSid: m.sid ?? '',
      MessageStatus: status,
      SmsSid: m.sid ?? '',
      SmsStatus: status,
      To: m.to ?? '',
    };
    if (m.messagingServiceSid) params.MessagingServiceSid = m.messagingServiceSid;
    if ((status === 'undelivered' || status === 'failed') && m.errorCode !== null) params.ErrorCode = String(m.errorCode);
    // Twilio adds carrier fields without notice (docs/reliability.md#twilio): receivers must sign-check all params.
    if (status === 'delivered') params.RawDlrDoneDate = new Date().toISOString().replace(/\D/g, '').slice(2, 12);
    return params;
  }

  app.post<{ Params: { AccountSid: string } }>(`${prefix}/Messages.json`, async (req, reply) => {
    const params = formParams(req.body);
    const now = new Date().toISOString();
    const record = (fields: Partial<MessageRecord>): MessageRecord =>
      state.messages.add((seq) => ({
        seq,
        receivedAt: now,
        accepted: false,
        httpStatus: null,
        fault: null,
        params,
        sid: null,
        to: first(params, 'To') ?? null,
        from: first(params, 'From') ?? null,
        messagingServiceSid: first(params, 'MessagingServiceSid') ?? null,
        body: first(params, 'Body') ?? null,
        statusCallback: first(params, 'StatusCallback') ?? null,
        numSegments: null,
        encoding: null,
        status: null,
        errorCode: null,
        errorMessage: null,
        dateCreated: now,
        dateUpdated: now,
        dateSent: null,
        price: null,
        callbacks: [],
        ...fields,
      }));
    const refuse = (err: TwilioErrorBody, fault: Fault | undefined = undefined, headers: Record<string, string> = {}) => {
      record({ httpStatus: err.status, errorCode: err.code, errorMessage: err.message, fault: appliedFault(fault) });
      return sendError(reply, err, headers);
    };

    const denied = authError(req);
    if (denied) return refuse(denied);
    const input = validateCreate(params);
    if ('code' in input) return refuse(input);

    const fault = ctx.faults.take('twilio', [input.to]);
    if (fault?.kind === '429') {
      const retryAfter = fault.retryAfterSeconds ?? 1;
      return refuse(twilioError(20429, 429, fault.message ?? 'Too Many Requests'), fault, { 'retry-after': String(retryAfter) });
    }
    if (fault && !processedDespite(fault)) {
      if (fault.kind === '500') return refuse(twilioError(20500, 500, fault.message ?? 'Internal Server Error'), fault);
      if (fault.kind === '503') {
        return refuse(twilioError(20503, 503, fault.message ?? 'Service Unavailable'), fault, fault.retryAfterSeconds !== undefined ? { 'retry-after': String(fault.retryAfterSeconds) } : {});
      }
      return refuse(faultError(fault), fault);
    }

    // Accepted: the message exists from here on, whatever the client ends up seeing.
    const segments = countSmsSegments(input.body);
    const m = record({
      accepted: true,
      fault: appliedFault(fault),
      sid: twilioSid('SM'),
      to: input.to,
      from: input.from,
      messagingServiceSid: input.messagingServiceSid,
      body: input.body,
      statusCallback: input.statusCallback,
      numSegments: segments.segments,
      encoding: segments.encoding,
      status: input.messagingServiceSid ? 'accepted' : 'queued',
    });
    state.bySid.set(m.sid as string, m);
    const failing = fault?.delivery !== undefined && faultSelects(fault, input.to);
    startLifecycle(m, {
      final: failing ? (fault?.delivery === 'failed' ? 'failed' : 'undelivered') : 'delivered',
      errorCode: failing && fault?.code !== undefined ? fault.code : null,
    });
    log.debug({ sid: m.sid, segments: segments.segments, fault: fault?.kind }, 'twilio message accepted');

    return answerProcessed(fault, req, reply, ctx.bg, {
      error: (f) => {
        m.httpStatus = Number(f.kind);
        const retryAfter: Record<string, string> = f.kind === '503' && f.retryAfterSeconds !== undefined ? { 'retry-after': String(f.retryAfterSeconds) } : {};
        return sendError(reply, twilioError(f.kind === '500' ? 20500 : 20503, m.httpStatus, f.message ?? (f.kind === '500' ? 'Internal Server Error' : 'Service Unavailable')), retryAfter);
      },
      ok: () => {
        m.httpStatus = 201;
        return send(reply, 201, messageResource(m, settings.accountSid, { creating: true }));
      },
    });
  });

  app.get<{ Params: { AccountSid: string; Sid: string } }>(`${prefix}/Messages/:Sid.json`, async (req, reply) => {
    const denied = authError(req);
    if (denied) return sendError(reply, denied);
    const m = state.bySid.get(req.params.Sid);
    if (!m) return sendError(reply, twilioError(20404, 404, `The requested resource ${req.url.split('?')[0]} was not found`));
    return send(reply, 200, messageResource(m, settings.accountSid));
  });

  app.get<{ Params: { AccountSid: string }; Querystring: Record<string, string | undefined> }>(`${prefix}/Messages.json`, async (req, reply) => {
    const denied = authError(req);
    if (denied) return sendError(reply, denied);
    const q = req.query;
    const dates = dateFilter(q);
    if ('code' in dates) return sendError(reply, dates);
    const pageSize = intParam(q.PageSize, 50, 1, 1000);
    const page = intParam(q.Page, 0, 0, 1_000_000);
    if (pageSize === undefined || page === undefined) return sendError(reply, twilioError(20001, 400, 'Invalid PageSize or Page'));

    const start = page * pageSize;
    const items: Record<string, unknown>[] = [];
    let seen = 0;
    let more = false;
    for (const m of state.messages.newestFirst()) {
      if (!m.accepted || m.sid === null) continue;
      if (q.To && m.to !== q.To) continue;
      if (q.From && m.from !== q.From) continue;
      const t = Date.parse(m.dateSent ?? m.dateCreated);
      if (t < dates.min || t > dates.max) continue;
      if (seen++ < start) continue;
      if (items.length === pageSize) {
        more = true;
        break;
      }
      items.push(messageResource(m, settings.accountSid));
    }

    const path = `/${API_VERSION}/Accounts/${settings.accountSid}/Messages.json`;
    const pageUri = (p: number) => {
      const qs = new URLSearchParams();
      for (const key of ['To', 'From', 'DateSent', 'DateSent<', 'DateSent>']) {
        const v = q[key];
        if (v) qs.set(key, v);
      }
      qs.set('PageSize', String(pageSize));
      qs.set('Page', String(p));
      return `${path}?${qs.toString()}`;
    };
    return send(reply, 200, {
      end: start + Math.max(items.length, 1) - 1,
      first_page_uri: pageUri(0),
      messages: items,
      next_page_uri: more ? pageUri(page + 1) : null,
      page,
      page_size: pageSize,
      previous_page_uri: page > 0 ? pageUri(page - 1) : null,
      start,
      uri: pageUri(page),
    });
  });

  // Admin: play an inbound SMS to Hatch's webhook, optionally twice with the same MessageSid.
  app.post('/_emulator/twilio/inbound', async (req, reply) => {
    if (!Value.Check(InboundPlay, req.body)) {
      const problems = [...Value.Errors(InboundPlay, req.body)].map((e) => `${e.instancePath.slice(1) || 'body'}: ${e.message}`);
      return reply.code(400).send({ error: 'invalid inbound SMS', problems });
    }
    return reply.send(await playInbound(req.body));
  });

  async function playInbound(p: InboundPlay): Promise<InboundResult> {
    const messageSid = p.messageSid ?? twilioSid('SM');
    const url = p.url ?? settings.inboundUrl;
    const to = p.to ?? settings.phoneNumber;
    const params: Record<string, string> = {
      AccountSid: settings.accountSid,
      ApiVersion: API_VERSION,
      Body: p.body,
      From: p.from,
      MessageSid: messageSid,
      NumMedia: '0',
      NumSegments: String(countSmsSegments(p.body).segments),
      SmsMessageSid: messageSid,
      SmsSid: messageSid,
      SmsStatus: 'received',
      To: to,
    };
    // a retry of the same webhook (the duplicate) carries the same token
    const request = callbacks.request(url, params);
    // One attempt each: the admin caller sees exactly what Hatch answered.
    const policy = { ...ctx.webhook, attempts: 1 };
    const deliveries: WebhookResult[] = [await ctx.webhooks.post(request, policy)];
    if (p.duplicate) deliveries.push(await ctx.webhooks.post(request, policy));
    state.inbound.add((seq) => ({ seq, at: new Date().toISOString(), messageSid, url, params, deliveries }));
    log.debug({ messageSid, deliveries: deliveries.map((d) => d.status) }, 'twilio inbound played');
    return { messageSid, url, deliveries };
  }

  return { playInbound };
}

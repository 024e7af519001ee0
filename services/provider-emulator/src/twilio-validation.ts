/**
 * Twilio's request validation: the create parameters in the order Twilio reports the first
 * problem, the list filters, and the admin route's inbound SMS. Numbers are E.164 by the
 * contract's one rule (@hatch/contracts isE164).
 */
import Type, { type Static } from 'typebox';
import { E164_PATTERN, isE164 } from '@hatch/contracts';
import type { FormParams } from './signing.js';
import { twilioError, type TwilioErrorBody } from './twilio-errors.js';

/** Twilio's Body limit; counted in code points like the gateway's own check (contracts SMS_BODY_MAX). */
export const TWILIO_BODY_MAX = 1600;

/** Alphanumeric sender ID: up to 11 letters, digits and spaces, at least one letter. */
const ALPHANUMERIC_SENDER = /^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$/;
const MESSAGING_SERVICE_SID = /^MG[0-9a-fA-F]{32}$/;

/** Form fields as strings (repeated fields stay arrays); JSON bodies are tolerated the same way. */
export function formParams(body: unknown): FormParams {
  const out: FormParams = {};
  if (body === null || typeof body !== 'object') return out;
  for (const [k, v] of Object.entries(body as Record<string, string | string[] | undefined>)) {
    if (Array.isArray(v)) out[k] = v.map(String);
    else if (v !== undefined && v !== null) out[k] = String(v);
  }
  return out;
}

export function first(params: FormParams, key: string): string | undefined {
  const v = params[key];
  return Array.isArray(v) ? v[0] : v;
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

export type CreateInput = {
  to: string;
  from: string | null;
  messagingServiceSid: string | null;
  body: string;
  statusCallback: string | null;
};

/** Twilio's create validation, in the order Twilio reports the first problem. */
export function validateCreate(params: FormParams): CreateInput | TwilioErrorBody {
  const to = first(params, 'To')?.trim();
  const from = first(params, 'From')?.trim() || null;
  const messagingServiceSid = first(params, 'MessagingServiceSid')?.trim() || null;
  const body = first(params, 'Body') ?? '';
  const statusCallback = first(params, 'StatusCallback')?.trim() || null;
  const hasMedia = params.MediaUrl !== undefined || params.ContentSid !== undefined;
  if (!to) return twilioError(21604, 400, "A 'To' phone number is required.");
  if (!isE164(to)) return twilioError(21211, 400, `Invalid 'To' Phone Number: ${to}`);
  if (!from && !messagingServiceSid) return twilioError(21603, 400, "A 'From' phone number is required.");
  if (from && !isE164(from) && !ALPHANUMERIC_SENDER.test(from)) return twilioError(21212, 400, `Invalid 'From' Phone Number: ${from}`);
  if (messagingServiceSid && !MESSAGING_SERVICE_SID.test(messagingServiceSid)) {
    return twilioError(21705, 400, `The Messaging Service Sid ${messagingServiceSid} is invalid.`);
  }
  if (from && from === to) return twilioError(21266, 400, "'To' and 'From' number cannot be the same");
  if (body.length === 0 && !hasMedia) return twilioError(21602, 400, 'Message body is required.');
  if ([...body].length > TWILIO_BODY_MAX)
    return twilioError(21617, 400, `The concatenated message body exceeds the ${TWILIO_BODY_MAX} character limit.`);
  if (statusCallback && !isHttpUrl(statusCallback)) return twilioError(21609, 400, `Invalid StatusCallback url: ${statusCallback}`);
  return { to, from, messagingServiceSid, body, statusCallback };
}

export type DateRange = { min: number; max: number };

/** DateSent / DateSent< / DateSent> : a day (YYYY-MM-DD) or an instant; bounds inclusive. */
export function dateFilter(query: Record<string, unknown>): DateRange | TwilioErrorBody {
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

export function intParam(raw: unknown, def: number, min: number, max: number): number | undefined {
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  return Number.isInteger(n) && n >= min && n <= max ? n : undefined;
}

/** The admin route's inbound SMS to play (POST /_emulator/twilio/inbound). */
export const InboundPlay = Type.Object(
  {
    from: Type.String({ pattern: E164_PATTERN }),
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

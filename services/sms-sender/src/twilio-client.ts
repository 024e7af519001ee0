/**
 * The Twilio side of the sms-sender, through the official `twilio` SDK. TWILIO_API_URL points
 * the SDK at another base URL (the provider emulator) with a RequestClient that rewrites the
 * origin of each request; region/edge are never set because they rewrite the host
 * (docs/architecture.md#known-traps). A 429's Retry-After header, which the SDK's
 * RestException drops, is carried into `details.retry_after_seconds`, capped (a hint never parks a job longer than
 * MAX_PROVIDER_RETRY_AFTER_MS).
 */
// The SDK's REST client and HTTP client, not the package root: the root also loads the JWT and
// TwiML builders (jsonwebtoken, semver, xmlbuilder: ~60 modules, ~1 MB heap) the sender never
// uses (bench P7). `twilio(sid, token, opts)` is `new Twilio(sid, token, opts)`.
import Twilio from 'twilio/lib/rest/Twilio.js';
import TwilioRequestClient from 'twilio/lib/base/RequestClient.js';
import { capRetryHintMs, parseRetryAfterMs } from '@hatch/jobs';

export interface SentMessage {
  sid: string;
  status: string;
  numSegments: number | null;
}

export interface ProviderMessage {
  sid: string;
  body: string;
  status: string;
  dateCreated: Date;
  errorCode: number | null;
}

/** What the sender needs of Twilio; the handler is written against this. */
export interface TwilioPort {
  create(p: { to: string; from: string; body: string; statusCallback: string }): Promise<SentMessage>;
  /** messages sent from `from` to `to` since `since`, newest first (reconciliation of an unknown outcome) */
  findRecent(p: { to: string; from: string; since: Date }): Promise<ProviderMessage[]>;
}

const TWILIO_DEFAULT_ORIGIN = 'https://api.twilio.com';

type RequestOpts<T> = TwilioRequestClient.RequestOptions<T>;

class BaseUrlRequestClient extends TwilioRequestClient {
  private readonly base: URL;
  constructor(baseUrl: string, timeoutMs: number) {
    super({ timeout: timeoutMs, keepAlive: true });
    this.base = new URL(baseUrl);
  }

  override async request<T>(opts: RequestOpts<T>) {
    const uri = new URL(opts.uri);
    uri.protocol = this.base.protocol;
    uri.host = this.base.host;
    uri.pathname = `${this.base.pathname.replace(/\/$/, '')}${uri.pathname}`;
    const res = await super.request<T>({ ...opts, uri: uri.href });
    return withRetryAfter(res);
  }
}

class TimeoutRequestClient extends TwilioRequestClient {
  constructor(timeoutMs: number) {
    super({ timeout: timeoutMs, keepAlive: true });
  }
  override async request<T>(opts: RequestOpts<T>) {
    return withRetryAfter(await super.request<T>(opts));
  }
}

function withRetryAfter<R extends { statusCode: number; body: unknown; headers: unknown }>(res: R): R {
  if (res.statusCode !== 429) return res;
  const headers = (res.headers ?? {}) as Record<string, unknown>;
  // seconds or an HTTP-date, capped at MAX_PROVIDER_RETRY_AFTER_MS (@hatch/jobs)
  const retryAfterMs = parseRetryAfterMs(headers['retry-after']);
  if (retryAfterMs === undefined) return res;
  try {
    const body =
      typeof res.body === 'string' ? (JSON.parse(res.body) as Record<string, unknown>) : ((res.body ?? {}) as Record<string, unknown>);
    const details = typeof body.details === 'object' && body.details !== null ? body.details : {};
    return { ...res, body: JSON.stringify({ ...body, details: { ...details, retry_after_seconds: retryAfterMs / 1000 } }) };
  } catch {
    return res;
  }
}

export function createTwilioPort(o: { accountSid: string; authToken: string; apiUrl: string; timeoutMs: number }): TwilioPort {
  const custom = new URL(o.apiUrl).origin !== TWILIO_DEFAULT_ORIGIN;
  const httpClient = custom ? new BaseUrlRequestClient(o.apiUrl, o.timeoutMs) : new TimeoutRequestClient(o.timeoutMs);
  const client = new Twilio(o.accountSid, o.authToken, { httpClient, autoRetry: false });
  return {
    async create(p) {
      const m = await client.messages.create({ to: p.to, from: p.from, body: p.body, statusCallback: p.statusCallback });
      const n = Number(m.numSegments);
      return { sid: m.sid, status: m.status, numSegments: Number.isFinite(n) && n > 0 ? n : null };
    },
    async findRecent(p) {
      const list = await client.messages.list({ to: p.to, from: p.from, dateSentAfter: p.since, limit: 50 });
      return list.map((m) => ({ sid: m.sid, body: m.body, status: m.status, dateCreated: m.dateCreated, errorCode: m.errorCode ?? null }));
    },
  };
}

export type TwilioFailure =
  | { kind: 'rate_limited'; retryAfterMs?: number; code: string }
  | { kind: 'permanent'; code: string; message: string }
  | { kind: 'unknown'; code: string; message: string }
  | { kind: 'not_sent'; code: string; message: string; delayMs: number };

/**
 * Error classes (docs/reliability.md#twilio): 429/20429 retry after the hint; 5xx, timeouts and resets
 * after the request left us are an unknown outcome (Twilio's POST is not idempotent: reconcile
 * before any resend); auth errors mean nothing was sent (retry slowly, loudly); every other
 * 4xx is permanent (21211 invalid To, 21610 unsubscribed, 21614 not mobile, 21408 region, …).
 */
export function classifyTwilioError(err: unknown): TwilioFailure {
  const e = err as { status?: unknown; code?: number | string; message?: string; details?: { retry_after_seconds?: number } };
  if (typeof e?.status === 'number') {
    const code = e.code !== undefined && e.code !== null ? String(e.code) : `HTTP_${e.status}`;
    if (e.status === 429 || code === '20429') {
      const s = e.details?.retry_after_seconds;
      return { kind: 'rate_limited', code, retryAfterMs: typeof s === 'number' ? capRetryHintMs(s * 1000) : undefined };
    }
    if (e.status >= 500) return { kind: 'unknown', code, message: e.message ?? 'provider error' };
    if (e.status === 401 || e.status === 403 || code === '20003')
      return { kind: 'not_sent', code, message: e.message ?? 'authentication failed', delayMs: 30_000 };
    return { kind: 'permanent', code, message: e.message ?? 'refused by Twilio' };
  }
  const netCode = typeof e?.code === 'string' ? e.code : 'NETWORK';
  // Refused / not resolved: the request never reached Twilio.
  if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN'].includes(netCode))
    return { kind: 'not_sent', code: netCode, message: e?.message ?? netCode, delayMs: 2000 };
  return { kind: 'unknown', code: netCode, message: e?.message ?? 'no answer' };
}

import Type, { type Static } from 'typebox';
import { isIP } from 'node:net';
import type { KeyObject } from 'node:crypto';
import { ConfigError, configOrExit, databaseSettings, envWithDatabaseUrl, loadConfig, LogLevel, natsSettings } from '@hatch/config';
import { countryCallingCode, E164_PATTERN, EmailAddressSchema, isCountryCallingCode } from '@hatch/contracts';
import { realtimeSettings } from './realtime/config.js';
import { sendgridPublicKeyOption } from './webhooks/sendgrid-key.js';

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/**
 * Fastify's `trustProxy` from HATCH_TRUST_PROXY: false (unset), or the proxies' addresses /
 * CIDRs / proxy-addr names. Throws a ConfigError for anything else, including a range that
 * trusts every address. No hop count: fastify 5.12 treats a count as "trust nobody", since a
 * count cannot tell the proxy from a client that sends enough X-Forwarded-For entries itself.
 */
export function trustProxyOption(value: string | undefined): false | string[] {
  if (value === undefined || value.trim() === '') return false;
  const entries = value.split(',').map((e) => e.trim());
  for (const e of entries) {
    if (PROXY_NAMES.has(e)) continue;
    const [addr = '', bits, extra] = e.split('/');
    const family = isIP(addr);
    const max = family === 6 ? 128 : 32;
    const ok =
      family !== 0 && extra === undefined && (bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) >= 1 && Number(bits) <= max));
    if (!ok) {
      throw new ConfigError([
        `HATCH_TRUST_PROXY: "${e}" is not an IP address, a CIDR range (not /0: that trusts everyone) or loopback/linklocal/uniquelocal`,
      ]);
    }
  }
  return entries;
}

/** The country calling codes SMS may go to, or every country. */
export type SmsAllowedCountries = '*' | readonly string[];

/**
 * HATCH_SMS_ALLOWED_COUNTRIES: `*`, or country calling codes separated by commas (`1,44`, a `+`
 * before a code is fine). Unset: the country of TWILIO_PHONE_NUMBER, where the account is; with
 * no TWILIO_PHONE_NUMBER the provider emulator stands in (`pnpm start` gives it +15005550006),
 * so `1`: a spend guard fails closed, and a development setup then refuses what production
 * with a US number would. Throws a ConfigError for a code that is not an assigned one (a typo
 * must not pass for a country list that allows nothing, or another country).
 */
export function smsAllowedCountriesOption(value: string | undefined, twilioPhoneNumber: string | undefined): SmsAllowedCountries {
  if (value === undefined || value.trim() === '') {
    const own = twilioPhoneNumber ? countryCallingCode(twilioPhoneNumber) : '1';
    return own ? [own] : [];
  }
  if (value.trim() === '*') return '*';
  const codes = value.split(',').map((e) => e.trim().replace(/^\+/, ''));
  const bad = codes.filter((c) => !isCountryCallingCode(c));
  if (bad.length) {
    throw new ConfigError([
      `HATCH_SMS_ALLOWED_COUNTRIES: ${bad.map((b) => JSON.stringify(b)).join(', ')} ${bad.length === 1 ? 'is not a country calling code' : 'are not country calling codes'} (want "*" or codes like "1,44")`,
    ]);
  }
  return [...new Set(codes)];
}

export const GatewayConfig = Type.Object({
  PORT: Type.Integer({ minimum: 1, maximum: 65535, default: 5002 }),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  ...databaseSettings(20),
  ...natsSettings,
  PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s/]+' })),
  HATCH_API_TOKEN: Type.String({ minLength: 16 }),
  HATCH_SENDER_NAME: Type.String({ minLength: 1, maxLength: 100, default: 'me' }),
  HATCH_RATE_LIMIT_PER_MINUTE: Type.Integer({ minimum: 1, default: 1200 }),
  /** /webhooks/* requests per client address per minute before 429 (far above a real Twilio/SendGrid burst) */
  HATCH_WEBHOOK_RATE_LIMIT_PER_MINUTE: Type.Integer({ minimum: 1, default: 60_000 }),
  /** failed authentications per client address per minute before 429 (issue 14: at most 20) */
  HATCH_AUTH_FAILURES_PER_MINUTE: Type.Integer({ minimum: 1, maximum: 20, default: 20 }),
  /**
   * The proxies in front of the gateway whose X-Forwarded-For is believed (req.ip, the client
   * address the limits key on): a comma-separated list of the proxies' addresses / CIDRs (the
   * bundled nginx's fixed address in compose; the ingress controller's pod range on
   * Kubernetes). Unset: none (the peer is the client). Never "trust everyone": `true`, `*`
   * and /0 ranges are refused.
   */
  HATCH_TRUST_PROXY: Type.Optional(Type.String({ maxLength: 1000 })),
  /** Node's headersTimeout: a client has this long to send its request headers (slowloris) */
  HATCH_HTTP_HEADERS_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 120_000, default: 10_000 }),
  /** Node's requestTimeout: the whole request (headers and body) must arrive within it; SSE streams are not cut (their request is complete at once) */
  HATCH_HTTP_REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 120_000 }),
  /** idle keep-alive connections close after this; above the bundled nginx's and common load balancers' 60 s, so the proxy closes first */
  HATCH_HTTP_KEEPALIVE_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 65_000 }),
  /**
   * an SMS or email still queued/sending with no change for this long and no job waiting gets a new
   * job (the outbox relay's safety net for a job lost on the way); keep it above the workers'
   * largest retry delay (SMS_BACKOFF_MAX_MS, EMAIL_BACKOFF_MAX_MS: 5 min) plus their ack wait
   */
  HATCH_OUTBOX_STALLED_AFTER_MS: Type.Integer({ minimum: 10_000, maximum: 86_400_000, default: 600_000 }),
  /**
   * request-body bytes being read at once across all requests (one full 28 MiB email and room for
   * the small ones); past it a request with a body is 503 + Retry-After. memory-budget.ts counts it.
   */
  HATCH_BODY_BYTES_IN_FLIGHT_MAX: Type.Integer({ minimum: 1024 * 1024, default: 48 * 1024 * 1024 }),
  /** a session unused this long ends (issue 18; docs/api.md "Sessions"): 7 days */
  HATCH_SESSION_IDLE_HOURS: Type.Integer({ minimum: 1, maximum: 24 * 365, default: 7 * 24 }),
  /** a session ends this long after sign-in however much it is used: 30 days */
  HATCH_SESSION_MAX_DAYS: Type.Integer({ minimum: 1, maximum: 365, default: 30 }),
  /** how long an invite or password-reset link works: 72 hours */
  HATCH_INVITE_HOURS: Type.Integer({ minimum: 1, maximum: 24 * 30, default: 72 }),
  /** audit rows older than this are deleted: 1 year */
  HATCH_AUDIT_RETENTION_DAYS: Type.Integer({ minimum: 1, maximum: 36_500, default: 365 }),
  /** password hashes computed at once (each holds 128 MiB for ~0.3 s: passwords.ts); memory-budget.ts counts them */
  HATCH_PASSWORD_HASH_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 16, default: 1 }),
  /**
   * scrypt's cost as log2 N for new password hashes (r = 8, p = 1): OWASP's 17 (128 MiB, ~0.3 s).
   * Only the tests lower it (each hash then takes milliseconds); every stored hash records its own
   * parameters, so hashes of either cost verify, and a weaker one is rehashed at this cost at the
   * next sign-in (routes/session.ts). Never lower it in production: below 17 main.ts warns at start.
   */
  HATCH_PASSWORD_SCRYPT_LOG2N: Type.Integer({ minimum: 10, maximum: 20, default: 17 }),
  /** sign-ins waiting for a hash slot; past it 503 + Retry-After */
  HATCH_PASSWORD_HASH_QUEUE_MAX: Type.Integer({ minimum: 0, maximum: 1000, default: 32 }),
  TWILIO_ACCOUNT_SID: Type.Optional(Type.String({ pattern: '^AC[0-9a-fA-F]{32}$' })),
  TWILIO_AUTH_TOKEN: Type.Optional(Type.String({ minLength: 1 })),
  TWILIO_PHONE_NUMBER: Type.Optional(Type.String({ pattern: E164_PATTERN })),
  /** SMS spend guard: where SMS may go (smsAllowedCountriesOption; default the country of TWILIO_PHONE_NUMBER) */
  HATCH_SMS_ALLOWED_COUNTRIES: Type.Optional(Type.String({ maxLength: 2000 })),
  /** SMS spend guard: SMS accepted per UTC day, all senders on every replica together (counted in PostgreSQL); 0 sends none */
  HATCH_SMS_DAILY_LIMIT: Type.Integer({ minimum: 0, maximum: 1_000_000_000, default: 10_000 }),
  /** base64 DER (as SendGrid shows it) or PEM EC P-256 key; without it SendGrid events are refused (403) */
  SENDGRID_WEBHOOK_PUBLIC_KEY: Type.Optional(Type.String({ minLength: 1 })),
  /** development only: accept unsigned SendGrid events when no key is set (warned about at start) */
  SENDGRID_WEBHOOK_ALLOW_UNSIGNED: Type.Boolean({ default: false }),
  SENDGRID_FROM_EMAIL: Type.Optional(EmailAddressSchema),
  LOG_LEVEL: LogLevel,
  /** the built web UI to serve at / (default: web/dist of this checkout; the image sets /app/web) */
  HATCH_WEB_DIR: Type.Optional(Type.String({ minLength: 1 })),
  ...realtimeSettings,
});
export type GatewayConfig = Static<typeof GatewayConfig> & {
  PUBLIC_URL: string;
  trustProxy: false | string[];
  smsAllowedCountries: SmsAllowedCountries;
  sendgridPublicKey: KeyObject | undefined;
};

type Env = Record<string, string | undefined>;

function finish(c: Static<typeof GatewayConfig>): GatewayConfig {
  return Object.freeze({
    ...c,
    PUBLIC_URL: (c.PUBLIC_URL ?? `http://localhost:${c.PORT}`).replace(/\/+$/, ''),
    trustProxy: trustProxyOption(c.HATCH_TRUST_PROXY),
    smsAllowedCountries: smsAllowedCountriesOption(c.HATCH_SMS_ALLOWED_COUNTRIES, c.TWILIO_PHONE_NUMBER),
    sendgridPublicKey: sendgridPublicKeyOption(c.SENDGRID_WEBHOOK_PUBLIC_KEY),
  });
}

/** For tests: throws ConfigError listing every problem. */
export function parseGatewayConfig(env: Env): GatewayConfig {
  return finish(loadConfig(GatewayConfig, envWithDatabaseUrl(env)));
}

/** For main.ts: one line per problem on stderr, exit 1. */
export function loadGatewayConfig(env: Env = process.env): GatewayConfig {
  return configOrExit('gateway', () => parseGatewayConfig(env));
}

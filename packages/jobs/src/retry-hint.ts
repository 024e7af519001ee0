/**
 * Provider rate-limit hints (Twilio `Retry-After`, SendGrid `X-RateLimit-Reset`), read once for
 * both senders and capped. A hint decides how long a job is parked (nak with that delay), so a
 * hostile or buggy one (`Retry-After: 1000000000`, a reset in the year 2500) must not park a job
 * for years: past MAX_PROVIDER_RETRY_AFTER_MS the job is simply tried again then (another 429
 * parks it once more, and after the consumer's maximum of deliveries it is dead-lettered).
 */

/** The longest a provider hint may park a job: 15 minutes (README, "Sending"). */
export const MAX_PROVIDER_RETRY_AFTER_MS = 15 * 60_000;

/** `ms` clamped into [0, MAX_PROVIDER_RETRY_AFTER_MS]; undefined for anything not a number. */
export function capRetryHintMs(ms: number | undefined): number | undefined {
  if (ms === undefined || Number.isNaN(ms)) return undefined;
  return Math.min(MAX_PROVIDER_RETRY_AFTER_MS, Math.max(0, ms));
}

function headerText(value: unknown): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (typeof v === 'number') return String(v);
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

/**
 * `Retry-After` (RFC 9110 §10.2.3: delay-seconds, or an HTTP-date) → milliseconds from `now`,
 * capped; undefined when absent or unreadable.
 */
export function parseRetryAfterMs(value: unknown, now = Date.now()): number | undefined {
  const text = headerText(value);
  if (text === undefined) return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return capRetryHintMs(Number(text) * 1000);
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : capRetryHintMs(at - now);
}

/**
 * `X-RateLimit-Reset` (Unix time in seconds when the window resets) → milliseconds from `now`,
 * at least 1 s (a reset already past, or clock skew, means "soon", not "at once"), capped.
 */
export function parseRateLimitResetMs(value: unknown, now = Date.now()): number | undefined {
  const text = headerText(value);
  if (text === undefined || !/^\d+(\.\d+)?$/.test(text)) return undefined;
  const reset = Number(text);
  if (reset <= 0) return undefined;
  return capRetryHintMs(Math.max(1000, reset * 1000 - now));
}

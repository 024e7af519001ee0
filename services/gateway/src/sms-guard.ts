/**
 * SMS spend guard (issue 14, SECURITY.md): an SMS costs the owner's money, so the gateway sends
 * one only to the allowed countries (HATCH_SMS_ALLOWED_COUNTRIES) and at most
 * HATCH_SMS_DAILY_LIMIT a UTC day. The country is checked here, before anything is written; the
 * daily limit is taken in PostgreSQL with the write itself (@hatch/db sms-quota.ts), since it
 * holds for every replica together. Both refusals are 422 and store nothing.
 */
import { countryCallingCode } from '@hatch/contracts';
import type { SmsAllowedCountries } from './config.js';
import { HttpError } from './errors.js';

export interface SmsGuard {
  allowedCountries: SmsAllowedCountries;
  dailyLimit: number;
}

/** Throws 422 SMS_COUNTRY_NOT_ALLOWED when `to` (E.164) is outside the allowed countries; `field`: the request field it came from. */
export function checkSmsCountry(guard: SmsGuard, to: string, field?: string): void {
  if (guard.allowedCountries === '*') return;
  const code = countryCallingCode(to);
  if (code !== undefined && guard.allowedCountries.includes(code)) return;
  const allowed = guard.allowedCountries.length ? guard.allowedCountries.map((c) => `+${c}`).join(', ') : 'none';
  const where = code === undefined ? 'is in no known country' : `is in country code +${code}`;
  throw new HttpError(
    'SMS_COUNTRY_NOT_ALLOWED',
    `SMS to ${to} is not allowed: it ${where}, and SMS may only go to ${allowed} (HATCH_SMS_ALLOWED_COUNTRIES)`,
    {
      details: field ? [{ field, message: `${where}; SMS may only go to ${allowed}` }] : undefined,
    },
  );
}

/** 422 SMS_DAILY_LIMIT_REACHED: today's SMS are used up (the counter resets at 00:00 UTC). */
export function smsDailyLimitReached(guard: SmsGuard): HttpError {
  return new HttpError(
    'SMS_DAILY_LIMIT_REACHED',
    `the daily SMS limit (${guard.dailyLimit} per UTC day, HATCH_SMS_DAILY_LIMIT) is reached; SMS can be sent again after 00:00 UTC`,
  );
}

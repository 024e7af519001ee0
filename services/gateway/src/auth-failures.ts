/**
 * Failed authentication bounded per client address (issue 14, SECURITY.md): after `limit`
 * failed authentications within `windowMs` from one address (a wrong Bearer token, a forged or
 * malformed session cookie, a wrong token at POST /api/session), further failed attempts get
 * 429 + Retry-After instead of 401. A valid credential is checked first and always works.
 *
 * The count lives in PostgreSQL (`auth_failures`, one statement per failure), so the limit
 * holds across every gateway replica, not per replica. A refused address is also remembered
 * here until its Retry-After, so a client hammering away costs no database write per attempt;
 * that memory is bounded (`maxRemembered`, oldest dropped first).
 * The client address is `req.ip`: the peer, or behind the configured proxies
 * (`HATCH_TRUST_PROXY`) the address they forwarded.
 */
import type { Logger } from '@hatch/log';
import { recordAuthFailure, type Db } from '@hatch/db';
import { Counter, type Registry } from 'prom-client';
import { retryLater, type HttpError } from './errors.js';

export interface AuthFailureLimiterOptions {
  /** failed authentications allowed per address per window (issue 14: at most 20 a minute) */
  limit: number;
  windowMs: number;
  /** refused addresses remembered in this process */
  maxRemembered?: number;
}

export interface AuthFailureLimiter {
  /** Call with the 401 a failed authentication would answer: returns it, or a 429 past the limit. */
  refuse(address: string, unauthorized: HttpError): Promise<HttpError>;
}

export function createAuthFailureLimiter(
  deps: { db: Db; log: Logger; registry: Registry },
  opts: AuthFailureLimiterOptions,
): AuthFailureLimiter {
  const refused = new Counter({
    name: 'hatch_auth_failures_refused_total',
    help: 'failed authentications answered 429 (over the per-address limit)',
    registers: [deps.registry],
  });
  const maxRemembered = opts.maxRemembered ?? 10_000;
  /** address → refused until (ms); insertion order is age order */
  const refusedUntil = new Map<string, number>();

  const tooMany = (retryAfterS: number) => {
    refused.inc();
    return retryLater('RATE_LIMITED', `too many failed authentications from this address; retry in ${retryAfterS} s`, retryAfterS);
  };

  return {
    async refuse(address, unauthorized) {
      const now = Date.now();
      const until = refusedUntil.get(address);
      if (until !== undefined) {
        if (until > now) return tooMany(Math.ceil((until - now) / 1000));
        refusedUntil.delete(address);
      }
      let record;
      try {
        record = await recordAuthFailure(deps.db.db, address, opts.limit, opts.windowMs);
      } catch (err) {
        // The request is refused either way; without the database the count is not kept
        // (the per-credential rate limit still bounds attempts). SECURITY.md says so.
        deps.log.warn({ err: { message: (err as Error).message } }, 'failed authentication not counted: database unavailable');
        return unauthorized;
      }
      if (!record.blocked) return unauthorized;
      if (refusedUntil.size >= maxRemembered) {
        const oldest = refusedUntil.keys().next().value;
        if (oldest !== undefined) refusedUntil.delete(oldest);
      }
      refusedUntil.set(address, now + record.retryAfterS * 1000);
      return tooMany(record.retryAfterS);
    },
  };
}

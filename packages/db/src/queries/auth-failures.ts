import { sql } from 'kysely';
import type { Executor } from '../client.js';

export interface AuthFailureRecord {
  /** this attempt came while `limit` failures were already in the window: refuse it (429) */
  blocked: boolean;
  /** seconds until an attempt from this address would be checked again */
  retryAfterS: number;
}

/**
 * Records one failed authentication from `address` in its sliding log and says whether it came
 * over the limit. The log keeps the last `limit + 1` attempts inside the window, refused ones
 * included (a client that keeps guessing stays refused). One statement, so concurrent
 * failures on several gateway replicas count exactly: the row lock serialises them.
 * An attempt is blocked when `limit` attempts were already in the window, i.e. when the log
 * holds `limit + 1` attempts after it; it may try again once all but `limit - 1` have aged out.
 */
export async function recordAuthFailure(ex: Executor, address: string, limit: number, windowMs: number): Promise<AuthFailureRecord> {
  const window = sql`make_interval(secs => ${windowMs / 1000})`;
  const recent = sql`ARRAY(SELECT a FROM unnest(f.attempts) a WHERE a > clock_timestamp() - ${window} ORDER BY a DESC LIMIT ${limit})`;
  const { rows } = await sql<{ attempts: Date[]; at: Date }>`
    INSERT INTO auth_failures AS f (address, attempts) VALUES (${address}, ARRAY[clock_timestamp()])
    ON CONFLICT (address) DO UPDATE
      SET attempts = ARRAY(SELECT a FROM unnest(${recent}) a ORDER BY a) || clock_timestamp()
    RETURNING attempts, clock_timestamp() AS at`.execute(ex);
  const row = rows[0];
  if (!row) throw new Error('recordAuthFailure: no row returned');
  const attempts = row.attempts.map((a) => new Date(a).getTime());
  const blocked = attempts.length > limit;
  // Allowed again once only limit - 1 earlier attempts are in the window: when the
  // (attempts.length - limit + 1)-th oldest ages out.
  const releaseAt = blocked ? (attempts[attempts.length - limit] ?? 0) + windowMs : 0;
  return { blocked, retryAfterS: blocked ? Math.max(1, Math.ceil((releaseAt - new Date(row.at).getTime()) / 1000)) : 0 };
}

/** Deletes logs whose newest attempt is out of the window, in bounded batches. */
export async function purgeAuthFailures(ex: Executor, windowMs: number, batch = 10_000): Promise<number> {
  const r = await sql`
    DELETE FROM auth_failures WHERE address IN (
      SELECT address FROM auth_failures
      WHERE attempts[cardinality(attempts)] < clock_timestamp() - make_interval(secs => ${windowMs / 1000})
      LIMIT ${batch})`.execute(ex);
  return Number(r.numAffectedRows ?? 0);
}

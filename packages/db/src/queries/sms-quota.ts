import { sql, type RawBuilder } from 'kysely';
import type { Executor } from '../client.js';

/**
 * The SMS daily limit (HATCH_SMS_DAILY_LIMIT) is a counter row per UTC day in PostgreSQL, taken
 * in the same statement or transaction as the writes it pays for. Why not a count kept by each
 * process: the limit is for all senders on every replica together. Why not `count(*)` of today's
 * outbound SMS: under READ COMMITTED two concurrent sends each see `limit - 1` and both insert;
 * the upsert below instead waits on the row lock of the statement ahead of it and then reads the
 * latest committed `sent` (INSERT … ON CONFLICT DO UPDATE locks and updates the newest row
 * version even when the snapshot is older), so concurrent takers queue on one row and never
 * overshoot; a send that rolls back gives its slot back with it.
 * The price is one hot row: statements that send SMS serialise on it for the rest of their
 * transaction, across replicas; the gateway's group commit makes that one lock per batch.
 *
 * `wanted` is a query of one row and one int column: how many SMS the statement wants to send.
 * It takes what is left of today's limit up to that (fewer near the limit) and returns one row
 * with `last_taken`, how many it got; no row when it wanted none (the counter is not touched).
 * A null limit counts without limiting.
 */
export function takeSmsQuotaSql(limit: number | null, wanted: RawBuilder<unknown>): RawBuilder<{ last_taken: number }> {
  const cap = sql`${limit}::int`;
  // least() ignores a NULL, so with no limit `sent` grows by all that is wanted. `last_taken`
  // (PostgreSQL < 18 has no RETURNING old.*) is how many this statement moved `sent` by: SET
  // expressions read the row as it was. greatest() keeps a lowered limit from giving any back.
  return sql<{ last_taken: number }>`
    INSERT INTO sms_daily_counts AS c (day, sent, last_taken)
    SELECT (now() AT TIME ZONE 'UTC')::date, least(${cap}, w.k), least(${cap}, w.k)
    FROM (${wanted}) AS w(k) WHERE w.k > 0
    ON CONFLICT (day) DO UPDATE SET
      sent = greatest(c.sent, least(${cap}, c.sent + excluded.last_taken)),
      last_taken = greatest(0, least(${cap}, c.sent + excluded.last_taken) - c.sent)
    RETURNING c.last_taken`;
}

/** Takes up to `count` SMS of today's limit; returns how many it got. The caller's transaction holds the row until it ends. */
export async function takeSmsQuota(ex: Executor, limit: number | null, count: number): Promise<number> {
  const r = await takeSmsQuotaSql(limit, sql`SELECT ${count}::int`).execute(ex);
  return r.rows[0]?.last_taken ?? 0;
}

/** SMS counted today (UTC). */
export async function findSmsSentToday(ex: Executor): Promise<number> {
  const r = await sql<{ sent: number }>`SELECT sent FROM sms_daily_counts WHERE day = (now() AT TIME ZONE 'UTC')::date`.execute(ex);
  return r.rows[0]?.sent ?? 0;
}

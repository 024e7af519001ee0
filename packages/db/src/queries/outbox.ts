import type { Insertable, Selectable } from 'kysely';
import { sql } from 'kysely';
import type { Executor } from '../client.js';
import type { Outbox } from '../generated.js';

export type OutboxRow = Selectable<Outbox>;
export type NewOutboxRow = Insertable<Outbox>;

export async function insertOutbox(ex: Executor, row: NewOutboxRow): Promise<OutboxRow> {
  return ex.insertInto('outbox').values(row).returningAll().executeTakeFirstOrThrow();
}

/** JetStream acknowledged the publish: the row's job is durable on the bus. */
export async function deleteOutbox(ex: Executor, ids: readonly string[]): Promise<number> {
  if (ids.length === 0) return 0;
  const r = await ex.deleteFrom('outbox').where('id', 'in', ids).executeTakeFirst();
  return Number(r.numDeletedRows);
}

/**
 * Rows due for (re-)publishing, locked for this transaction; other sweepers skip them
 * (FOR UPDATE SKIP LOCKED), so replicas share the work instead of fighting over it.
 */
export async function claimDueOutbox(ex: Executor, opts: { limit: number; olderThanMs: number }): Promise<OutboxRow[]> {
  return ex
    .selectFrom('outbox')
    .selectAll()
    .where('available_at', '<=', sql<Date>`now() - make_interval(secs => ${opts.olderThanMs / 1000})`)
    .orderBy('available_at')
    .orderBy('id')
    .limit(opts.limit)
    .forUpdate()
    .skipLocked()
    .execute();
}

/** A failed publish: try again after `delayMs`, remembering why. */
export async function deferOutbox(ex: Executor, id: string, delayMs: number, error: string): Promise<void> {
  await ex
    .updateTable('outbox')
    .set({
      available_at: sql`now() + make_interval(secs => ${delayMs / 1000})`,
      publish_attempts: sql`publish_attempts + 1`,
      last_error: error.slice(0, 500),
    })
    .where('id', '=', id)
    .execute();
}

/** How a re-queue's timeline entry begins (requeueStalled). */
export const STALLED_NOTE_PREFIX = 'no progress for ';

/**
 * The rescue for jobs the bus gave up on (docs/architecture.md, rule 1: every crash
 * recovered). A job that kept failing for reasons outside the provider (the database down longer than its delivery budget,
 * a dead-letter publish that never happened) leaves its SMS or email `queued` or `sending` with
 * no job anywhere. Every SMS / email that has made no progress for `staleMs` and has no outbox
 * row gets a new one, and its `updated_at` is touched so that it is re-queued at most once per
 * `staleMs` (a backlog does not multiply its jobs); the rows are returned for the relay to
 * publish. A job for a message that is in fact still moving is harmless: the worker's claim
 * lets one attempt call the provider, and a `sending` message is reconciled with the provider
 * before anything is resent. Touching `updated_at` writes no change-journal row (the journal
 * follows status and body). Each re-queue leaves a timeline entry (source `outbox`, detail
 * starting with STALLED_NOTE_PREFIX): the delay is visible on the message, and countable.
 */
export async function requeueStalled(ex: Executor, opts: { staleMs: number; limit: number }): Promise<OutboxRow[]> {
  const staleSecs = opts.staleMs / 1000;
  const r = await sql<OutboxRow>`
    WITH stalled AS (
      SELECT s.kind, s.id, s.status FROM (
        SELECT 'sms'::job_kind AS kind, m.id, m.status::text AS status FROM messages m
         WHERE m.status IN ('queued', 'sending') AND m.channel = 'sms' AND m.direction = 'outbound'
           AND m.updated_at < now() - make_interval(secs => ${staleSecs})
        UNION ALL
        SELECT 'email'::job_kind AS kind, e.id, e.status::text AS status FROM emails e
         WHERE e.status IN ('queued', 'sending')
           AND e.updated_at < now() - make_interval(secs => ${staleSecs})
      ) s
      WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.entity_id = s.id)
      LIMIT ${opts.limit}
    ),
    touched_messages AS (
      UPDATE messages SET updated_at = now() WHERE id IN (SELECT id FROM stalled WHERE kind = 'sms') RETURNING id
    ),
    touched_emails AS (
      UPDATE emails SET updated_at = now() WHERE id IN (SELECT id FROM stalled WHERE kind = 'email') RETURNING id
    ),
    noted AS (
      INSERT INTO status_events (message_id, email_id, status, source, sent_by_source, detail)
      SELECT CASE WHEN kind = 'sms' THEN id END, CASE WHEN kind = 'email' THEN id END, status, 'outbox', 'outbox',
             ${`${STALLED_NOTE_PREFIX}${Math.round(staleSecs)} s: its job was published again`}::text
        FROM stalled
      RETURNING id
    )
    INSERT INTO outbox (kind, entity_id, dedupe_id)
    SELECT kind, id, id::text || ':stalled:' || (extract(epoch FROM now()) * 1000)::bigint::text FROM stalled
    ON CONFLICT (dedupe_id) DO NOTHING
    RETURNING *`.execute(ex);
  return r.rows;
}

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

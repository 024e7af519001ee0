import type { Insertable, Selectable } from 'kysely';
import { sql } from 'kysely';
import type { Executor } from '../client.js';
import type { IdempotencyKeys } from '../generated.js';

export type IdempotencyKeyRow = Selectable<IdempotencyKeys>;
export type NewIdempotencyKey = Insertable<IdempotencyKeys>;

/** Takes the key for a new request; undefined when the key is already held (the caller reads it). */
export async function insertIdempotencyKey(ex: Executor, k: NewIdempotencyKey): Promise<IdempotencyKeyRow | undefined> {
  return ex
    .insertInto('idempotency_keys')
    .values(k)
    .onConflict((oc) => oc.columns(['scope', 'key']).doNothing())
    .returningAll()
    .executeTakeFirst();
}

export async function findIdempotencyKey(ex: Executor, scope: string, key: string): Promise<IdempotencyKeyRow | undefined> {
  return ex.selectFrom('idempotency_keys').selectAll().where('scope', '=', scope).where('key', '=', key).executeTakeFirst();
}

/** Stores the answer (in the same transaction as the route's own writes). */
export async function completeIdempotencyKey(ex: Executor, scope: string, key: string, status: number, body: unknown): Promise<void> {
  await ex
    .updateTable('idempotency_keys')
    .set({ state: 'completed', response_status: status, response_body: body as never, locked_until: null })
    .where('scope', '=', scope)
    .where('key', '=', key)
    .execute();
}

/** Takes over a key whose request died holding it (lock expired); true for the one winner. */
export async function takeOverIdempotencyKey(ex: Executor, scope: string, key: string, lockUntil: Date): Promise<boolean> {
  const r = await ex
    .updateTable('idempotency_keys')
    .set({ locked_until: lockUntil })
    .where('scope', '=', scope)
    .where('key', '=', key)
    .where('state', '=', 'in_progress')
    .where('locked_until', '<=', sql<Date>`now()`)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/** Lets go of a key whose request ended without an answer to keep (it wrote nothing). */
export async function releaseIdempotencyKey(ex: Executor, scope: string, key: string): Promise<void> {
  await ex.deleteFrom('idempotency_keys').where('scope', '=', scope).where('key', '=', key).where('state', '=', 'in_progress').execute();
}

export async function deleteExpiredIdempotencyKey(ex: Executor, scope: string, key: string, now: Date): Promise<void> {
  await ex.deleteFrom('idempotency_keys').where('scope', '=', scope).where('key', '=', key).where('expires_at', '<=', now).execute();
}

/** Expired keys go in bounded batches (a bounded table, docs/architecture.md, rule 4). */
export async function purgeExpiredIdempotencyKeys(ex: Executor, batch = 1000): Promise<number> {
  const r = await sql`
    WITH doomed AS (SELECT scope, key FROM idempotency_keys WHERE expires_at < now() LIMIT ${batch})
    DELETE FROM idempotency_keys k USING doomed d WHERE k.scope = d.scope AND k.key = d.key`.execute(ex);
  return Number(r.numAffectedRows ?? 0n);
}

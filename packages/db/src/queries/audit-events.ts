/**
 * The audit trail (issue 18, sql/0005_accounts.sql): append-only rows of ids, never bodies,
 * passwords or tokens. A trigger refuses UPDATE, and DELETE outside purgeAuditEvents.
 */
import type { Insertable, Kysely, Selectable } from 'kysely';
import { sql } from 'kysely';
import type { Executor } from '../client.js';
import type { AuditEvents, DB } from '../generated.js';

export type AuditEventRow = Selectable<AuditEvents>;
export type NewAuditEvent = Insertable<AuditEvents>;

export async function insertAuditEvent(ex: Executor, e: NewAuditEvent): Promise<void> {
  await ex.insertInto('audit_events').values(e).execute();
}

/**
 * Newest first, strictly before the id `before` (GET /api/audit). `userId` matches the actor or
 * the user the event was about.
 */
export async function listAuditEvents(
  ex: Executor,
  opts: { limit: number; before?: string; userId?: string; kind?: string },
): Promise<AuditEventRow[]> {
  let q = ex.selectFrom('audit_events').selectAll();
  if (opts.before !== undefined) q = q.where('id', '<', opts.before);
  if (opts.kind !== undefined) q = q.where('kind', '=', opts.kind);
  const userId = opts.userId;
  if (userId !== undefined) q = q.where((eb) => eb.or([eb('actor_id', '=', userId), eb(sql<string>`subject ->> 'user_id'`, '=', userId)]));
  return q.orderBy('id', 'desc').limit(opts.limit).execute();
}

/** Rows older than the retention, in bounded batches (the one DELETE the trigger lets through). */
/** Opens its own transaction: the purge flag is set for it alone. */
export async function purgeAuditEvents(ex: Kysely<DB>, olderThan: Date, batch = 10_000): Promise<number> {
  return ex.transaction().execute(async (tx) => {
    await sql`SELECT set_config('hatch.audit_purge', 'on', true)`.execute(tx);
    const r = await sql`
      DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE at < ${olderThan} ORDER BY id LIMIT ${batch})`.execute(tx);
    return Number(r.numAffectedRows ?? 0n);
  });
}

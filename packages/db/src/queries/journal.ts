/**
 * The change journal (sql/0002): rows the triggers append on every message / email change, read
 * in id order by the realtime bridge (relay) and by the gateway (SSE resume), and the bridge's
 * persisted position. Journal ids are bigint: strings here, never JS numbers.
 */
import type { Selectable } from 'kysely';
import { sql } from 'kysely';
import type { BusChangeEvent, EmailStatus, MessageStatus } from '@hatch/contracts';
import type { Executor } from '../client.js';
import type { ChangeJournal } from '../generated.js';

export type JournalRow = Selectable<ChangeJournal>;

/** Journal rows with id > afterId, oldest first, at most `limit` (optionally at most `upToId`). */
export async function findJournalAfter(ex: Executor, afterId: string, limit: number, upToId?: string): Promise<JournalRow[]> {
  let q = ex.selectFrom('change_journal').selectAll().where('id', '>', afterId);
  if (upToId !== undefined) q = q.where('id', '<=', upToId);
  return q.orderBy('id').limit(limit).execute();
}

/** The oldest journal id still kept (retention deletes older ones), or undefined when empty. */
/** The newest journal id committed so far (a resuming client's id up to it is one of ours). */
export async function findNewestJournalId(ex: Executor): Promise<string | undefined> {
  const r = await ex.selectFrom('change_journal').select('id').orderBy('id', 'desc').limit(1).executeTakeFirst();
  return r?.id;
}

export async function findOldestJournalId(ex: Executor): Promise<string | undefined> {
  const r = await ex.selectFrom('change_journal').select('id').orderBy('id').limit(1).executeTakeFirst();
  return r?.id;
}

/**
 * Retention: deletes at most `limit` rows older than `olderThanMs` that the bridge has already
 * relayed (id <= relayedUpTo; an unrelayed row is kept whatever its age). Returns how many.
 */
export async function deleteOldJournalRows(
  ex: Executor,
  opts: { olderThanMs: number; relayedUpTo: string; limit: number },
): Promise<number> {
  const r = await ex
    .deleteFrom('change_journal')
    .where(
      'id',
      'in',
      ex
        .selectFrom('change_journal')
        .select('id')
        .where('changed_at', '<', sql<Date>`now() - make_interval(secs => ${opts.olderThanMs / 1000})`)
        .where('id', '<=', opts.relayedUpTo)
        .orderBy('id')
        .limit(opts.limit),
    )
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}

/** The bridge's last relayed journal id: inserts its row ('0') the first time, then reads it. */
export async function ensureBridgePosition(ex: Executor, name: string): Promise<string> {
  await ex
    .insertInto('bridge_positions')
    .values({ name })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  const r = await ex.selectFrom('bridge_positions').select('last_id').where('name', '=', name).executeTakeFirstOrThrow();
  return r.last_id;
}

/** Moves the position forward (never back: a stale replica's late write cannot rewind it). */
export async function markBridgePosition(ex: Executor, name: string, lastId: string): Promise<void> {
  await ex
    .updateTable('bridge_positions')
    .set({ last_id: sql`GREATEST(last_id, ${lastId}::bigint)`, updated_at: sql`now()` })
    .where('name', '=', name)
    .execute();
}

/** The bus envelope of one journal row: the one mapping, used by the bridge and by SSE resume. */
export function journalRowToEvent(row: JournalRow): BusChangeEvent {
  const timestamp = new Date(row.changed_at).toISOString();
  const action = row.action as BusChangeEvent['event']['action'];
  if (row.table_name === 'messages') {
    return {
      id: String(row.id),
      event: {
        type: 'message_update',
        conversation_id: row.conversation_id as string,
        action,
        message_id: row.row_id,
        status: row.status as MessageStatus,
        timestamp,
      },
    };
  }
  return {
    id: String(row.id),
    event: { type: 'email_update', action, email_id: row.row_id, status: row.status as EmailStatus, timestamp },
  };
}

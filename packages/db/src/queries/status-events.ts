import type { Insertable, Selectable } from 'kysely';
import type { Executor } from '../client.js';
import type { StatusEvents } from '../generated.js';

export type StatusEventRow = Selectable<StatusEvents>;
export type NewStatusEvent = Insertable<StatusEvents>;

/**
 * Adds a timeline row. With a provider_event_id, a replay of the same provider event is stored
 * once: returns false when it was already there.
 */
export async function insertStatusEvent(ex: Executor, e: NewStatusEvent): Promise<boolean> {
  const q = ex.insertInto('status_events').values(e);
  if (e.provider_event_id == null) {
    await q.execute();
    return true;
  }
  const r = await q
    .onConflict((oc) => oc.column('provider_event_id').where('provider_event_id', 'is not', null).doNothing())
    .executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0n) > 0;
}

export async function findTimeline(ex: Executor, ref: { messageId: string } | { emailId: string }): Promise<StatusEventRow[]> {
  const q = ex.selectFrom('status_events').selectAll();
  const filtered = 'messageId' in ref ? q.where('message_id', '=', ref.messageId) : q.where('email_id', '=', ref.emailId);
  return filtered.orderBy('occurred_at').orderBy('id').execute();
}

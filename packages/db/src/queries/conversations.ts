import type { Insertable, Selectable } from 'kysely';
import { sql } from 'kysely';
import type { Executor } from '../client.js';
import type { Conversations } from '../generated.js';

export type ConversationRow = Selectable<Conversations>;
export type NewConversation = Insertable<Conversations>;

/**
 * Creates the conversation or records one more message in it, in the caller's transaction
 * (contract: message_count and last activity are maintained with the insert). Concurrent
 * inserts into one conversation serialise on the row lock of this upsert, which is what keeps
 * message_count exact.
 */
export async function upsertConversationForMessage(
  ex: Executor,
  c: { id: string; participants: [string, string]; channel: ConversationRow['channel']; messageId: string; at?: Date },
): Promise<void> {
  const at = c.at ?? new Date();
  await ex
    .insertInto('conversations')
    .values({ id: c.id, participants: c.participants, channel: c.channel, last_message_id: c.messageId, last_message_at: at, message_count: 1, created_at: at, updated_at: at })
    .onConflict((oc) =>
      oc.column('id').doUpdateSet({
        last_message_id: c.messageId,
        last_message_at: sql`greatest(conversations.last_message_at, excluded.last_message_at)`,
        message_count: sql`conversations.message_count + 1`,
        updated_at: at,
      }),
    )
    .execute();
}

export async function findConversation(ex: Executor, id: string): Promise<ConversationRow | undefined> {
  return ex.selectFrom('conversations').selectAll().where('id', '=', id).executeTakeFirst();
}


/** Conversations by most recent activity, newest first, strictly before the keyset. */
export async function listConversations(ex: Executor, opts: { limit: number; before?: { at: Date; id: string } }): Promise<ConversationRow[]> {
  let q = ex.selectFrom('conversations').selectAll();
  if (opts.before) {
    const b = opts.before;
    q = q.where((eb) => eb.or([eb('last_message_at', '<', b.at), eb.and([eb('last_message_at', '=', b.at), eb('id', '<', b.id)])]));
  }
  return q.orderBy('last_message_at', 'desc').orderBy('id', 'desc').limit(opts.limit).execute();
}

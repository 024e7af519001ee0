import type { Insertable, Selectable } from 'kysely';
import type { Executor } from '../client.js';
import type { Conversations } from '../generated.js';

export type ConversationRow = Selectable<Conversations>;
export type NewConversation = Insertable<Conversations>;

export async function findConversation(ex: Executor, id: string): Promise<ConversationRow | undefined> {
  return ex.selectFrom('conversations').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Conversations by most recent activity, newest first, strictly before the keyset. */
export async function listConversations(
  ex: Executor,
  opts: { limit: number; before?: { at: Date; id: string } },
): Promise<ConversationRow[]> {
  let q = ex.selectFrom('conversations').selectAll();
  if (opts.before) {
    const b = opts.before;
    q = q.where((eb) => eb.or([eb('last_message_at', '<', b.at), eb.and([eb('last_message_at', '=', b.at), eb('id', '<', b.id)])]));
  }
  return q.orderBy('last_message_at', 'desc').orderBy('id', 'desc').limit(opts.limit).execute();
}

import type { Insertable, Selectable } from 'kysely';
import type { Executor } from '../client.js';
import type { Messages } from '../generated.js';

export type MessageRow = Selectable<Messages>;
export type NewMessage = Insertable<Messages>;

export async function insertMessage(ex: Executor, m: NewMessage): Promise<MessageRow> {
  return ex.insertInto('messages').values(m).returningAll().executeTakeFirstOrThrow();
}

export async function findMessage(ex: Executor, id: string): Promise<MessageRow | undefined> {
  return ex.selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findMessageByProviderSid(ex: Executor, sid: string): Promise<MessageRow | undefined> {
  return ex.selectFrom('messages').selectAll().where('provider_sid', '=', sid).executeTakeFirst();
}

/** Keyset position in a newest-first list. */
export interface Keyset {
  at: Date;
  id: string;
}

/** One conversation's messages, newest first, strictly before `before`. */
export async function listConversationMessages(
  ex: Executor,
  conversationId: string,
  opts: { limit: number; before?: Keyset },
): Promise<MessageRow[]> {
  let q = ex.selectFrom('messages').selectAll().where('conversation_id', '=', conversationId);
  if (opts.before) {
    const b = opts.before;
    q = q.where((eb) => eb.or([eb('created_at', '<', b.at), eb.and([eb('created_at', '=', b.at), eb('id', '<', b.id)])]));
  }
  return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(opts.limit).execute();
}

export async function updateMessage(ex: Executor, id: string, set: Partial<Omit<NewMessage, 'id'>>): Promise<MessageRow | undefined> {
  return ex
    .updateTable('messages')
    .set({ ...set, updated_at: new Date() })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

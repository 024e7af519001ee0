import type { Insertable, Selectable } from 'kysely';
import type { Executor } from '../client.js';
import type { Messages } from '../generated.js';
import { claimForSending, markSendOutcomeUnknown, reclaimStaleSend, releaseSendClaim } from './send-claims.js';

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
export async function listConversationMessages(ex: Executor, conversationId: string, opts: { limit: number; before?: Keyset }): Promise<MessageRow[]> {
  let q = ex.selectFrom('messages').selectAll().where('conversation_id', '=', conversationId);
  if (opts.before) {
    const b = opts.before;
    q = q.where((eb) => eb.or([eb('created_at', '<', b.at), eb.and([eb('created_at', '=', b.at), eb('id', '<', b.id)])]));
  }
  return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(opts.limit).execute();
}

/**
 * Claims a queued message for one send attempt (queued → sending, attempt counted). Only one
 * caller can win: a redelivered or duplicated job finds nothing to claim. Twilio's POST is not
 * idempotent, so this conditional update is what keeps a message to one provider call.
 * (The claim mechanism, with its timeline row, is shared with email: send-claims.ts.)
 */
export async function claimMessageForSending(ex: Executor, id: string): Promise<MessageRow | undefined> {
  return claimForSending(ex, 'messages', id);
}

/**
 * Takes over a message left in `sending` whose claim is gone (outcome unknown: claimed_at NULL)
 * or stale (its worker died: claimed before `staleBefore`), for reconciliation.
 */
export async function reclaimStaleSending(ex: Executor, id: string, staleBefore: Date): Promise<MessageRow | undefined> {
  return reclaimStaleSend(ex, 'messages', id, staleBefore);
}

/** Gives a claim back: the provider surely did not take the message (429, refused before sending). */
export async function releaseClaim(ex: Executor, id: string): Promise<void> {
  await releaseSendClaim(ex, 'messages', id);
}

/** The provider call's outcome is unknown (timeout, 5xx, reset): keep `sending`, drop the live claim so the next attempt reconciles first. */
export async function markOutcomeUnknown(ex: Executor, id: string): Promise<void> {
  await markSendOutcomeUnknown(ex, 'messages', id);
}

export async function updateMessage(ex: Executor, id: string, set: Partial<Omit<NewMessage, 'id'>>): Promise<MessageRow | undefined> {
  return ex.updateTable('messages').set({ ...set, updated_at: new Date() }).where('id', '=', id).returningAll().executeTakeFirst();
}

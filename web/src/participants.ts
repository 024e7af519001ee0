import type { Conversation, Message } from '@hatch/contracts';

/** The other side of a conversation: whoever is not us on its latest message. */
export function otherParticipant(c: Conversation): string {
  const m = c.last_message;
  if (m) return m.direction === 'outbound' ? m.to_contact : m.from_contact;
  return c.participants[c.participants.length - 1] ?? '';
}

export function otherOfMessage(m: Message): string {
  return m.direction === 'outbound' ? m.to_contact : m.from_contact;
}

/** Sort key: created_at then id (ISO strings compare in time order). */
export function byCreated(a: Message, b: Message): number {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

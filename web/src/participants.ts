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

/**
 * Our side of a conversation on its latest message (undefined before any). A reply is sent from
 * it, so the thread stays one conversation whoever on the team answers: a chat message's `from`
 * otherwise defaults to the person's own name, which would start a conversation of their own.
 */
export function ourParticipant(c: Conversation): string | undefined {
  const m = c.last_message;
  return m ? ourOfMessage(m) : undefined;
}

export function ourOfMessage(m: Message): string {
  return m.direction === 'outbound' ? m.from_contact : m.to_contact;
}

/** Sort key: created_at then id (ISO strings compare in time order). */
export function byCreated(a: Message, b: Message): number {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

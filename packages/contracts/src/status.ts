/**
 * Status order: the one definition. A status never moves backwards (contract): a late "sent"
 * after "delivered" is ignored, duplicates are harmless. Final statuses of the same rank do not
 * replace each other (Twilio may send "undelivered" and "failed" for one message; the first
 * final one wins).
 */
import Type from 'typebox';

export const MESSAGE_STATUSES = ['queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed', 'received', 'stored'] as const;
export type MessageStatus = (typeof MESSAGE_STATUSES)[number];

export const EMAIL_STATUSES = ['queued', 'sending', 'sent', 'deferred', 'delivered', 'bounced', 'dropped', 'failed'] as const;
export type EmailStatus = (typeof EMAIL_STATUSES)[number];

export const MessageStatusSchema = Type.Enum(MESSAGE_STATUSES);
export const EmailStatusSchema = Type.Enum(EMAIL_STATUSES);

const MESSAGE_RANK: Record<MessageStatus, number> = {
  queued: 0,
  sending: 1,
  sent: 2,
  delivered: 3,
  undelivered: 3,
  failed: 3,
  // Inbound and chat messages are born final and never move.
  received: 9,
  stored: 9,
};

const EMAIL_RANK: Record<EmailStatus, number> = {
  queued: 0,
  sending: 1,
  sent: 2,
  deferred: 3,
  delivered: 4,
  bounced: 4,
  dropped: 4,
  failed: 4,
};

export function messageStatusRank(status: MessageStatus): number {
  return MESSAGE_RANK[status];
}

export function emailStatusRank(status: EmailStatus): number {
  return EMAIL_RANK[status];
}

/** May a message go from `from` to `to` by a forward event (send progress, provider callback)? */
export function canMoveTo(from: MessageStatus, to: MessageStatus): boolean {
  return MESSAGE_RANK[to] > MESSAGE_RANK[from] && MESSAGE_RANK[from] < 9;
}

export function canEmailMoveTo(from: EmailStatus, to: EmailStatus): boolean {
  return EMAIL_RANK[to] > EMAIL_RANK[from];
}

/** Statuses at which nothing more will happen without an operator (retry). */
export function isFinalMessageStatus(status: MessageStatus): boolean {
  return MESSAGE_RANK[status] >= 3;
}

export function isFinalEmailStatus(status: EmailStatus): boolean {
  return EMAIL_RANK[status] >= 4;
}

/** Statuses a message must have for `POST /api/messages/:id/retry` (re-queue). */
export const RETRYABLE_MESSAGE_STATUSES: readonly MessageStatus[] = ['failed'];

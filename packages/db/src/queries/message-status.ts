import { canMoveTo, MESSAGE_STATUSES, type MessageStatus } from '@hatch/contracts';
import type { Executor } from '../client.js';
import type { MessageRow, NewMessage } from './messages.js';
import { applyStatusChanges, type StatusChange, type StatusChangeResult, type StatusReport } from './status-change.js';

export interface MessageStatusChange extends StatusReport {
  status: MessageStatus;
  /** columns written with a forward move (error code and message) */
  onMove?: Partial<Pick<NewMessage, 'error_code' | 'error_message' | 'claimed_at'>>;
  /** columns written whether or not the status moves (first provider SID, segments) */
  always?: Partial<Pick<NewMessage, 'provider_sid' | 'segments'>>;
}

export type MessageStatusResult = StatusChangeResult<MessageRow>;

/**
 * The one way a message's status changes after it was accepted: locks the row, moves the status
 * only forward (contract order, @hatch/contracts canMoveTo), and adds a timeline row for every
 * report, moved or not ("delivered" before "sent" leaves "delivered" and still shows both). One
 * statement: a transaction around it is needed only to join other writes.
 */
export async function applyMessageStatus(ex: Executor, id: string, change: MessageStatusChange): Promise<MessageStatusResult> {
  const [r] = await applyMessageStatuses(ex, [messageStatusChange(id, change)]);
  return r as MessageStatusResult;
}

/** Many reports about messages as ONE statement (applyStatusChanges; result i for report i). */
export function applyMessageStatuses(ex: Executor, changes: readonly StatusChange[]): Promise<MessageStatusResult[]> {
  return applyStatusChanges(ex, 'messages', changes);
}

/** A message's report with what it writes (the contract's forward order), for applyMessageStatuses. */
export function messageStatusChange(id: string, change: MessageStatusChange): StatusChange {
  return {
    id,
    report: change,
    writes: {
      movesFrom: MESSAGE_STATUSES.filter((from) => canMoveTo(from, change.status)),
      onMove: change.onMove,
      // the first SID a provider reports stays; Twilio's segment count replaces our estimate
      fill: { provider_sid: change.always?.provider_sid },
      replace: { segments: change.always?.segments },
    },
  };
}

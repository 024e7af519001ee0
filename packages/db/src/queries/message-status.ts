import { canMoveTo, type MessageStatus } from '@hatch/contracts';
import type { Transaction } from 'kysely';
import type { DB } from '../generated.js';
import { findMessageForUpdate, updateMessage, type MessageRow, type NewMessage } from './messages.js';
import { applyStatusChange, type StatusChangeResult, type StatusReport } from './status-change.js';

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
 * report, moved or not ("delivered" before "sent" leaves "delivered" and still shows both).
 */
export function applyMessageStatus(tx: Transaction<DB>, id: string, change: MessageStatusChange): Promise<MessageStatusResult> {
  return applyStatusChange<MessageRow, Partial<Omit<NewMessage, 'id'>>>(
    tx,
    {
      owner: { message_id: id },
      lock: () => findMessageForUpdate(tx, id),
      canMove: (from, to) => canMoveTo(from, to as MessageStatus),
      update: (set) => updateMessage(tx, id, set),
      patch: (row, moved) => {
        const set: Partial<Omit<NewMessage, 'id'>> = moved ? { status: change.status, ...change.onMove } : {};
        if (change.always?.provider_sid && !row.provider_sid) set.provider_sid = change.always.provider_sid;
        if (change.always?.segments != null && row.segments !== change.always.segments) set.segments = change.always.segments;
        return set;
      },
    },
    change,
  );
}

import { canMoveTo, type MessageStatus } from '@hatch/contracts';
import type { Transaction } from 'kysely';
import type { DB } from '../generated.js';
import { findMessageForUpdate, updateMessage, type MessageRow, type NewMessage } from './messages.js';
import { insertStatusEvent } from './status-events.js';

export interface MessageStatusChange {
  status: MessageStatus;
  /** who says so: worker, twilio_callback, retry, … */
  source: string;
  providerCode?: string | null;
  detail?: string | null;
  /** the provider's event id: a replay of the same event changes nothing */
  providerEventId?: string | null;
  /** columns written with a forward move (error code and message) */
  onMove?: Partial<Pick<NewMessage, 'error_code' | 'error_message' | 'claimed_at'>>;
  /** columns written whether or not the status moves (first provider SID, segments) */
  always?: Partial<Pick<NewMessage, 'provider_sid' | 'segments'>>;
}

export interface MessageStatusResult {
  row: MessageRow | undefined;
  moved: boolean;
  duplicate: boolean;
}

/**
 * The one way a message's status changes after it was accepted: locks the row, moves the status
 * only forward (contract order, @hatch/contracts canMoveTo), and adds a timeline row for every
 * report, moved or not ("delivered" before "sent" leaves "delivered" and still shows both).
 */
export async function applyMessageStatus(tx: Transaction<DB>, id: string, change: MessageStatusChange): Promise<MessageStatusResult> {
  const row = await findMessageForUpdate(tx, id);
  if (!row) return { row: undefined, moved: false, duplicate: false };
  const fresh = await insertStatusEvent(tx, {
    message_id: id,
    status: change.status,
    provider_code: change.providerCode ?? null,
    source: change.source,
    detail: change.detail ?? null,
    provider_event_id: change.providerEventId ?? null,
  });
  if (!fresh) return { row, moved: false, duplicate: true };
  const moved = canMoveTo(row.status, change.status);
  const set: Partial<Omit<NewMessage, 'id'>> = {};
  if (moved) Object.assign(set, { status: change.status }, change.onMove ?? {});
  if (change.always?.provider_sid && !row.provider_sid) set.provider_sid = change.always.provider_sid;
  if (change.always?.segments != null && row.segments !== change.always.segments) set.segments = change.always.segments;
  if (Object.keys(set).length === 0) return { row, moved: false, duplicate: false };
  return { row: await updateMessage(tx, id, set), moved, duplicate: false };
}

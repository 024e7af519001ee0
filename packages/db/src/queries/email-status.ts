import { canEmailMoveTo, type EmailStatus } from '@hatch/contracts';
import type { Transaction } from 'kysely';
import type { DB } from '../generated.js';
import { findEmailForUpdate, updateEmail, type EmailRow, type NewEmail } from './emails.js';
import { applyStatusChange, type StatusChangeResult, type StatusReport } from './status-change.js';

export interface EmailStatusChange extends StatusReport {
  /** an email status, or a timeline-only event (open, click, …) when `timelineOnly` */
  status: EmailStatus | string;
  /** columns written with a forward move */
  onMove?: Partial<Pick<NewEmail, 'error_code' | 'error_message' | 'claimed_at' | 'provider_response'>>;
  /** columns written whether or not the status moves (first provider message id) */
  always?: Partial<Pick<NewEmail, 'provider_message_id' | 'provider_response'>>;
}

export type EmailStatusResult = StatusChangeResult<EmailRow>;

/**
 * The one way an email's status changes after it was accepted (the email twin of
 * applyMessageStatus): locks the row, moves only forward (@hatch/contracts canEmailMoveTo), and
 * adds a timeline row for every report, moved or not; opens and clicks are timeline rows only.
 */
export function applyEmailStatus(tx: Transaction<DB>, id: string, change: EmailStatusChange): Promise<EmailStatusResult> {
  return applyStatusChange<EmailRow, Partial<Omit<NewEmail, 'id'>>>(
    tx,
    {
      owner: { email_id: id },
      lock: () => findEmailForUpdate(tx, id),
      canMove: (from, to) => canEmailMoveTo(from, to as EmailStatus),
      update: (set) => updateEmail(tx, id, set),
      patch: (row, moved) => {
        const set: Partial<Omit<NewEmail, 'id'>> = moved ? { status: change.status as EmailStatus, ...change.onMove } : {};
        if (change.always?.provider_message_id && !row.provider_message_id) set.provider_message_id = change.always.provider_message_id;
        if (change.always?.provider_response !== undefined && row.provider_response === null) set.provider_response = change.always.provider_response;
        return set;
      },
    },
    change,
  );
}

import { canEmailMoveTo, EMAIL_STATUSES, type EmailStatus } from '@hatch/contracts';
import type { Executor } from '../client.js';
import type { EmailRow, NewEmail } from './emails.js';
import { applyStatusChanges, type StatusChange, type StatusChangeResult, type StatusReport } from './status-change.js';

export interface EmailStatusChange extends StatusReport {
  /** an email status, or a timeline-only event (open, click, …) when `timelineOnly` */
  status: string;
  /** columns written with a forward move */
  onMove?: Partial<Pick<NewEmail, 'error_code' | 'error_message' | 'claimed_at' | 'provider_response'>>;
  /** columns written whether or not the status moves, where the email has none yet (first provider message id) */
  always?: Partial<Pick<NewEmail, 'provider_message_id' | 'provider_response'>>;
}

export type EmailStatusResult = StatusChangeResult<EmailRow>;

/**
 * The one way an email's status changes after it was accepted (the email twin of
 * applyMessageStatus): locks the row, moves only forward (@hatch/contracts canEmailMoveTo), and
 * adds a timeline row for every report, moved or not; opens and clicks are timeline rows only.
 * One statement: a transaction around it is needed only to join other writes.
 */
export async function applyEmailStatus(ex: Executor, id: string, change: EmailStatusChange): Promise<EmailStatusResult> {
  const [r] = await applyEmailStatuses(ex, [emailStatusChange(id, change)]);
  return r as EmailStatusResult;
}

/** Many reports about emails as ONE statement (applyStatusChanges; result i for report i). */
export function applyEmailStatuses(ex: Executor, changes: readonly StatusChange[]): Promise<EmailStatusResult[]> {
  return applyStatusChanges(ex, 'emails', changes);
}

/** An email's report with what it writes (the contract's forward order), for applyEmailStatuses. */
export function emailStatusChange(id: string, change: EmailStatusChange): StatusChange {
  const status = change.status as EmailStatus;
  return {
    id,
    report: change,
    writes: {
      movesFrom: EMAIL_STATUSES.includes(status) ? EMAIL_STATUSES.filter((from) => canEmailMoveTo(from, status)) : [],
      onMove: change.onMove,
      fill: change.always,
    },
  };
}

import { canEmailMoveTo, type EmailStatus } from '@hatch/contracts';
import type { Transaction } from 'kysely';
import type { DB } from '../generated.js';
import { findEmailForUpdate, updateEmail, type EmailRow, type NewEmail } from './emails.js';
import { insertStatusEvent } from './status-events.js';

export interface EmailStatusChange {
  /** an email status, or a timeline-only event (open, click, …) when `timelineOnly` */
  status: EmailStatus | string;
  timelineOnly?: boolean;
  /** who says so: worker, sendgrid_event, … */
  source: string;
  providerCode?: string | null;
  detail?: string | null;
  /** the provider's event id: a replay of the same event changes nothing */
  providerEventId?: string | null;
  /** columns written with a forward move */
  onMove?: Partial<Pick<NewEmail, 'error_code' | 'error_message' | 'claimed_at' | 'provider_response'>>;
  /** columns written whether or not the status moves (first provider message id) */
  always?: Partial<Pick<NewEmail, 'provider_message_id' | 'provider_response'>>;
}

export interface EmailStatusResult {
  row: EmailRow | undefined;
  moved: boolean;
  duplicate: boolean;
}

/**
 * The one way an email's status changes after it was accepted (the email twin of
 * applyMessageStatus): locks the row, moves only forward (@hatch/contracts canEmailMoveTo), and
 * adds a timeline row for every report, moved or not; opens and clicks are timeline rows only.
 */
export async function applyEmailStatus(tx: Transaction<DB>, id: string, change: EmailStatusChange): Promise<EmailStatusResult> {
  const row = await findEmailForUpdate(tx, id);
  if (!row) return { row: undefined, moved: false, duplicate: false };
  const fresh = await insertStatusEvent(tx, {
    email_id: id,
    status: change.status,
    provider_code: change.providerCode ?? null,
    source: change.source,
    detail: change.detail ?? null,
    provider_event_id: change.providerEventId ?? null,
  });
  if (!fresh) return { row, moved: false, duplicate: true };
  const moved = !change.timelineOnly && canEmailMoveTo(row.status, change.status as EmailStatus);
  const set: Partial<Omit<NewEmail, 'id'>> = {};
  if (moved) Object.assign(set, { status: change.status }, change.onMove ?? {});
  if (change.always?.provider_message_id && !row.provider_message_id) set.provider_message_id = change.always.provider_message_id;
  if (change.always?.provider_response !== undefined && row.provider_response === null) set.provider_response = change.always.provider_response;
  if (Object.keys(set).length === 0) return { row, moved: false, duplicate: false };
  return { row: await updateEmail(tx, id, set), moved, duplicate: false };
}

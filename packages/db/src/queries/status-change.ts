import type { Transaction } from 'kysely';
import type { DB } from '../generated.js';
import { insertStatusEvent } from './status-events.js';

/** One status report about a message or an email: a provider callback, the worker, the API. */
export interface StatusReport {
  status: string;
  /** a timeline entry that is never a status (an email's open, click, …) */
  timelineOnly?: boolean;
  /** who says so: worker, twilio_callback, sendgrid_event, retry, … */
  source: string;
  providerCode?: string | null;
  detail?: string | null;
  /** the provider's event id: a replay of the same event changes nothing */
  providerEventId?: string | null;
}

export interface StatusChangeResult<Row> {
  row: Row | undefined;
  moved: boolean;
  duplicate: boolean;
}

export interface StatusTarget<Row extends { status: string }, Patch> {
  /** the timeline row's owner column */
  owner: { message_id: string } | { email_id: string };
  /** the row, locked for this transaction */
  lock(): Promise<Row | undefined>;
  /** the status order of the row's kind (@hatch/contracts) */
  canMove(from: Row['status'], to: string): boolean;
  update(set: Patch): Promise<Row | undefined>;
  /** the columns to write: with a forward move, and those written whether or not it moves */
  patch(row: Row, moved: boolean): Patch;
}

/**
 * The one shape of every status change after acceptance, for messages and emails alike: lock the
 * row, add a timeline row for every report, moved or not (a replayed provider event changes
 * nothing at all), move the status only forward, write what goes with the move.
 */
export async function applyStatusChange<Row extends { status: string }, Patch extends object>(
  tx: Transaction<DB>,
  target: StatusTarget<Row, Patch>,
  report: StatusReport,
): Promise<StatusChangeResult<Row>> {
  const row = await target.lock();
  if (!row) return { row: undefined, moved: false, duplicate: false };
  const fresh = await insertStatusEvent(tx, {
    ...target.owner,
    status: report.status,
    provider_code: report.providerCode ?? null,
    source: report.source,
    detail: report.detail ?? null,
    provider_event_id: report.providerEventId ?? null,
  });
  if (!fresh) return { row, moved: false, duplicate: true };
  const moved = !report.timelineOnly && target.canMove(row.status, report.status);
  const set = target.patch(row, moved);
  if (Object.keys(set).length === 0) return { row, moved: false, duplicate: false };
  return { row: await target.update(set), moved, duplicate: false };
}

/**
 * The send claim, one mechanism for both channels (SMS rows in `messages`, email rows in
 * `emails`): a provider call is made only by the worker that moved the row queued → sending with
 * a conditional update, so a redelivered or duplicated job never calls the provider again.
 * `claimed_at` says whether the claim is live: NULL while sending means the last call's outcome
 * is unknown (timeout, 5xx, reset) and the next attempt must reconcile before any resend.
 * Both tables share the columns used here (status, attempts, claimed_at, updated_at).
 *
 * One vocabulary for both channels: claimSend, claimStaleSend, markSendReleased,
 * markSendOutcomeUnknown, markSendFailed, markSendExhausted, each taking the table. For SMS the
 * claim is what keeps a message to one Twilio call (Twilio's POST is not idempotent).
 */
import { sql, type Selectable } from 'kysely';
import type { Executor } from '../client.js';
import type { DB } from '../generated.js';
import { applyEmailStatus } from './email-status.js';
import { applyMessageStatus } from './message-status.js';

export type SendTable = 'messages' | 'emails';
type Row<T extends SendTable> = Selectable<DB[T]>;

// Kysely cannot type an update over a union of tables; both tables have these columns (sql/0001).
const as = (t: SendTable) => t as 'messages';

/**
 * queued → sending for one attempt (attempt counted), with its `sending` timeline row, as ONE
 * statement (no BEGIN/COMMIT round trips: the worker's hot path, bench P2); undefined when
 * someone else has it. `also`: columns written with the claim (an email takes the configured
 * sender address at send time).
 */
export async function claimSend<T extends SendTable>(
  ex: Executor,
  table: T,
  id: string,
  also: { from_email?: string } = {},
): Promise<Row<T> | undefined> {
  const now = new Date();
  const owner = table === 'messages' ? 'message_id' : 'email_id';
  const extra = table === 'emails' && also.from_email !== undefined ? sql`, from_email = ${also.from_email}` : sql``;
  const r = await sql<Row<T>>`
    WITH claimed AS (
      UPDATE ${sql.table(table)} SET status = 'sending', attempts = attempts + 1, claimed_at = ${now}, updated_at = ${now}${extra}
      WHERE id = ${id} AND status = 'queued'
      RETURNING *
    ),
    timeline AS (
      INSERT INTO status_events (${sql.ref(owner)}, status, source, sent_by_source, detail)
      SELECT id, 'sending', 'worker', 'worker', 'attempt ' || attempts FROM claimed
    )
    SELECT * FROM claimed`.execute(ex);
  return r.rows[0];
}

/**
 * Takes over a row left in `sending` whose claim is gone (outcome unknown: claimed_at NULL) or
 * stale (its worker died: claimed before `staleBefore`), for reconciliation.
 */
export async function claimStaleSend<T extends SendTable>(
  ex: Executor,
  table: T,
  id: string,
  staleBefore: Date,
): Promise<Row<T> | undefined> {
  const row = await ex
    .updateTable(as(table))
    .set((eb) => ({ attempts: eb('attempts', '+', 1), claimed_at: new Date(), updated_at: new Date() }))
    .where('id', '=', id)
    .where('status', '=', 'sending')
    .where((eb) => eb.or([eb('claimed_at', 'is', null), eb('claimed_at', '<', staleBefore)]))
    .returningAll()
    .executeTakeFirst();
  return row as Row<T> | undefined;
}

/** What the worker says on the timeline when it moves a claim (the provider's error code and why). */
export interface SendNote {
  providerCode: string;
  /** cut to 300 characters */
  detail: string;
}

/**
 * Gives a claim back: the provider surely did not take it (429, refused before sending). With a
 * `note`, the `queued` timeline row goes with it in the same statement.
 */
export async function markSendReleased(ex: Executor, table: SendTable, id: string, note?: SendNote): Promise<void> {
  await moveClaim(ex, table, id, { status: 'queued', claimed_at: null, updated_at: new Date() }, note && { ...note, status: 'queued' });
}

/**
 * The provider call's outcome is unknown: keep `sending`, drop the live claim (updated_at marks
 * when). With a `note`, a `sending` timeline row says so in the same statement.
 */
export async function markSendOutcomeUnknown(ex: Executor, table: SendTable, id: string, note?: SendNote): Promise<void> {
  await moveClaim(ex, table, id, { claimed_at: null, updated_at: new Date() }, note && { ...note, status: 'sending' });
}

/** An update of a row still `sending`, and its worker timeline row, as ONE statement. */
async function moveClaim(
  ex: Executor,
  table: SendTable,
  id: string,
  set: { status?: 'queued'; claimed_at: null; updated_at: Date },
  note: (SendNote & { status: string }) | undefined,
): Promise<void> {
  const update = ex.updateTable(as(table)).set(set).where('id', '=', id).where('status', '=', 'sending');
  if (!note) {
    await update.execute();
    return;
  }
  const owner = table === 'messages' ? 'message_id' : 'email_id';
  await ex
    .with('moved', () => update.returning('id'))
    .insertInto('status_events')
    .values({
      [owner]: id,
      status: note.status,
      source: 'worker',
      sent_by_source: 'worker',
      provider_code: note.providerCode,
      detail: note.detail.slice(0, 300),
    })
    .execute();
}

/** Why a send failed for good: the provider's code, or MAX_DELIVERIES when the worker gave up. */
export interface SendFailure {
  code: string;
  /** the timeline's detail (cut to 300 characters) */
  detail: string;
  /** the row's error_message (cut to 500 characters) */
  message: string;
  /** an email's provider_response (SendGrid's errors), where there is one */
  providerResponse?: unknown;
}

/**
 * A send ends in `failed` (forward moves only, with its timeline row, through the channel's
 * status change): the error code and message go on the row and the claim is dropped.
 */
export async function markSendFailed(ex: Executor, table: SendTable, id: string, f: SendFailure): Promise<void> {
  const report = { status: 'failed', source: 'worker', providerCode: f.code, detail: f.detail.slice(0, 300) } as const;
  const onMove = { error_code: f.code, error_message: f.message.slice(0, 500), claimed_at: null };
  if (table === 'messages') await applyMessageStatus(ex, id, { ...report, onMove });
  else await applyEmailStatus(ex, id, { ...report, onMove: { ...onMove, provider_response: f.providerResponse as never } });
}

/** Attempts exhausted: the row fails with MAX_DELIVERIES (its job goes to the dead-letter stream). */
export function markSendExhausted(ex: Executor, table: SendTable, id: string, reason: string): Promise<void> {
  return markSendFailed(ex, table, id, {
    code: 'MAX_DELIVERIES',
    detail: reason,
    message: `gave up after the maximum number of attempts: ${reason}`,
  });
}

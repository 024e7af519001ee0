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

/** A claim's look-up: the row as it stands (claimed: as the claim left it), or undefined when there is none. */
export interface SendClaim<T extends SendTable> {
  row: Row<T> | undefined;
  /** moved queued → sending by this claim: this worker, and only it, calls the provider */
  claimed: boolean;
}

/**
 * queued → sending for one attempt each (attempt counted), with a `sending` timeline row each,
 * for N rows of one table as ONE statement, the look-up folded in (the worker's hot path, bench
 * P2: a group of jobs is one round trip and one commit). Result i belongs to id i: the row
 * claimed, or the row as it stands when it is not claimable (someone else has it, not queued;
 * undefined when there is none); an id twice in `ids` is claimed once (the first). Only an
 * outbound SMS is a message with a send to claim. Rows are locked in id order, so concurrent
 * claims of overlapping ids cannot deadlock. `also`: columns written with the claim (an email
 * takes the configured sender address at send time).
 */
export async function claimSends<T extends SendTable>(
  ex: Executor,
  table: T,
  ids: readonly string[],
  also: { from_email?: string } = {},
): Promise<SendClaim<T>[]> {
  if (ids.length === 0) return [];
  const now = new Date();
  const owner = table === 'messages' ? 'message_id' : 'email_id';
  const extra = table === 'emails' && also.from_email !== undefined ? sql`, from_email = ${also.from_email}` : sql``;
  const only = table === 'messages' ? sql` AND channel = 'sms' AND direction = 'outbound'` : sql``;
  // `(status = 'queued') IS TRUE`, not `status = 'queued'`: the rows are found by primary key
  // alone. The plain comparison implies the predicate of the in-flight index (sql/0001,
  // `<table>_in_flight`: status IN ('queued', 'sending')), and the planner then ANDs that whole
  // index into the look-up: every queued and sending row's entry (and every dead one not vacuumed
  // yet) read for a handful of ids, a cost that grows with the backlog (bench P2 after P1's
  // queued SMS). Tested in status-change.test.ts ("a claim reads the rows by primary key only").
  const r = await sql<Row<T> & { claimed: boolean }>`
    WITH want AS (
      SELECT id FROM ${sql.table(table)} WHERE id = ANY(${[...ids]}::uuid[]) AND (status = 'queued') IS TRUE${only} ORDER BY id FOR UPDATE
    ),
    claimed AS (
      UPDATE ${sql.table(table)} AS t SET status = 'sending', attempts = attempts + 1, claimed_at = ${now}, updated_at = ${now}${extra}
      FROM want WHERE t.id = want.id AND t.status = 'queued'
      RETURNING t.*
    ),
    timeline AS (
      INSERT INTO status_events (${sql.ref(owner)}, status, source, sent_by_source, detail)
      SELECT id, 'sending', 'worker', 'worker', 'attempt ' || attempts FROM claimed
    )
    SELECT claimed.*, true AS claimed FROM claimed
    UNION ALL
    SELECT t.*, false FROM ${sql.table(table)} t WHERE t.id = ANY(${[...ids]}::uuid[]) AND t.id NOT IN (SELECT id FROM claimed)`.execute(
    ex,
  );
  const rows = new Map(r.rows.map((row) => [(row as unknown as { id: string }).id, row]));
  const seen = new Set<string>();
  return ids.map((raw) => {
    const id = raw.toLowerCase();
    const found = rows.get(id);
    if (!found) return { row: undefined, claimed: false };
    const { claimed, ...row } = found;
    const first = !seen.has(id);
    seen.add(id);
    return { row: row as unknown as Row<T>, claimed: claimed && first };
  });
}

/** queued → sending for one row: the batch of one (claimSends); undefined when it is not claimed. */
export async function claimSend<T extends SendTable>(
  ex: Executor,
  table: T,
  id: string,
  also: { from_email?: string } = {},
): Promise<Row<T> | undefined> {
  const [c] = await claimSends(ex, table, [id], also);
  return c?.claimed ? c.row : undefined;
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

/**
 * The send claim, one mechanism for both channels (SMS rows in `messages`, email rows in
 * `emails`): a provider call is made only by the worker that moved the row queued → sending with
 * a conditional update, so a redelivered or duplicated job never calls the provider again.
 * `claimed_at` says whether the claim is live: NULL while sending means the last call's outcome
 * is unknown (timeout, 5xx, reset) and the next attempt must reconcile before any resend.
 * Both tables share the columns used here (status, attempts, claimed_at, updated_at).
 *
 * One vocabulary for both channels: claimSend, claimStaleSend, markSendReleased,
 * markSendOutcomeUnknown, each taking the table. For SMS the claim is what keeps a message to
 * one Twilio call (Twilio's POST is not idempotent).
 */
import { sql, type Selectable } from 'kysely';
import type { Executor } from '../client.js';
import type { DB } from '../generated.js';

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
      INSERT INTO status_events (${sql.ref(owner)}, status, source, detail)
      SELECT id, 'sending', 'worker', 'attempt ' || attempts FROM claimed
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

/** Gives a claim back: the provider surely did not take it (429, refused before sending). */
export async function markSendReleased(ex: Executor, table: SendTable, id: string): Promise<void> {
  await ex
    .updateTable(as(table))
    .set({ status: 'queued', claimed_at: null, updated_at: new Date() })
    .where('id', '=', id)
    .where('status', '=', 'sending')
    .execute();
}

/** The provider call's outcome is unknown: keep `sending`, drop the live claim (updated_at marks when). */
export async function markSendOutcomeUnknown(ex: Executor, table: SendTable, id: string): Promise<void> {
  await ex
    .updateTable(as(table))
    .set({ claimed_at: null, updated_at: new Date() })
    .where('id', '=', id)
    .where('status', '=', 'sending')
    .execute();
}

import { sql, type RawBuilder, type Selectable } from 'kysely';
import type { Executor } from '../client.js';
import type { DB } from '../generated.js';
import type { SendTable } from './send-claims.js';
import { sourceAttribution, type Attribution } from './status-events.js';

/** One status report about a message or an email: a provider callback, the worker, the API. */
export interface StatusReport {
  status: string;
  /** a timeline entry that is never a status (an email's open, click, …) */
  timelineOnly?: boolean;
  /** who says so: worker, twilio_callback, sendgrid_event, retry, … */
  source: string;
  /** who (issue 18): a person's change passes theirs; otherwise it follows from `source` (sourceAttribution) */
  attribution?: Attribution;
  providerCode?: string | null;
  detail?: string | null;
  /** the provider's event id: a replay of the same event changes nothing */
  providerEventId?: string | null;
  /**
   * When it happened, as `performance.now()`, where that is before the write: the worker's `sent`
   * is when the provider answered, so a delivery callback that beat the worker's write still
   * comes after it on the timeline. Only the elapsed time is sent, taken off the database's clock
   * at the write, so a worker whose clock is off does not misplace it. Default: the write.
   */
  happenedAt?: number;
}

export interface StatusChangeResult<Row> {
  row: Row | undefined;
  moved: boolean;
  duplicate: boolean;
}

/** What a change writes besides the timeline row, column by column (values of that table's columns). */
export interface StatusWrites {
  /** the statuses the row may move from to the reported one (the contract order, @hatch/contracts) */
  movesFrom: readonly string[];
  /** written with a forward move */
  onMove?: Record<string, unknown>;
  /** written whether or not the status moves, where the row has none yet (a first provider id) */
  fill?: Record<string, unknown>;
  /** written whether or not the status moves, replacing what the row has (the provider's count) */
  replace?: Record<string, unknown>;
}

const defined = (o: Record<string, unknown> | undefined) => Object.entries(o ?? {}).filter(([, v]) => v !== undefined);

/**
 * The one shape of every status change after acceptance, for messages and emails alike, as ONE
 * statement (no BEGIN / lock / insert / update / COMMIT round trips: the workers' and webhooks'
 * hot path, bench P2): lock the row, add a timeline row for every report, moved or not (a
 * replayed provider event changes nothing at all), move the status only forward, write what
 * goes with the move. `row` is undefined when there is no such row; it is the row as it stands
 * after the change otherwise.
 *
 * How: `cur` locks the row (FOR UPDATE, so concurrent reports about one row apply one after the
 * other and each sees the other's status); the timeline insert runs only for a locked row and
 * yields nothing for a provider event already stored; the update runs only after a fresh insert
 * and only when something changes. The forward-only rule is the contract order, passed in as
 * the statuses the report may move from (`movesFrom`), so it is defined once, in
 * @hatch/contracts, not again in SQL.
 */
export async function applyStatusChange<T extends SendTable>(
  ex: Executor,
  table: T,
  id: string,
  report: StatusReport,
  writes: StatusWrites,
): Promise<StatusChangeResult<Selectable<DB[T]>>> {
  const owner = table === 'messages' ? 'message_id' : 'email_id';
  const agoSeconds = report.happenedAt === undefined ? 0 : Math.max(0, performance.now() - report.happenedAt) / 1000;
  const move = !report.timelineOnly && writes.movesFrom.length > 0;
  const moves = move ? sql<boolean>`cur.status::text = ANY(${[...writes.movesFrom]}::text[])` : sql<boolean>`false`;
  const col = (c: string) => sql.ref(`t.${c}`);
  const sets: RawBuilder<unknown>[] = [];
  const changes: RawBuilder<unknown>[] = [moves];
  if (move) {
    sets.push(sql`status = CASE WHEN ${moves} THEN ${report.status} ELSE t.status END`);
    for (const [c, v] of defined(writes.onMove)) sets.push(sql`${sql.id(c)} = CASE WHEN ${moves} THEN ${v} ELSE ${col(c)} END`);
  }
  for (const [c, v] of defined(writes.fill)) {
    if (v === null) continue;
    sets.push(sql`${sql.id(c)} = COALESCE(${col(c)}, ${v})`);
    changes.push(sql`${col(c)} IS NULL`);
  }
  for (const [c, v] of defined(writes.replace)) {
    if (v === null) continue;
    sets.push(sql`${sql.id(c)} = ${v}`);
    changes.push(sql`${col(c)} IS DISTINCT FROM ${v}`);
  }
  const changed =
    sets.length === 0
      ? sql`SELECT cur.*, false AS moved FROM cur WHERE false`
      : sql`UPDATE ${sql.table(table)} AS t SET ${sql.join(sets)}, updated_at = ${new Date()}
          FROM cur WHERE t.id = cur.id AND EXISTS (SELECT 1 FROM fresh) AND (${sql.join(changes, sql` OR `)})
          RETURNING t.*, ${moves} AS moved`;
  const r = await sql<Selectable<DB[T]> & { moved: boolean; duplicate: boolean }>`
    WITH cur AS (
      SELECT * FROM ${sql.table(table)} WHERE id = ${id} FOR UPDATE
    ),
    fresh AS (
      INSERT INTO status_events (${sql.id(owner)}, status, provider_code, source, detail, provider_event_id, sent_by, sent_by_source, occurred_at)
      SELECT id, ${report.status}, ${report.providerCode ?? null}, ${report.source}, ${report.detail ?? null}, ${report.providerEventId ?? null},
        ${report.attribution?.sent_by ?? null}::uuid, ${report.attribution?.sent_by_source ?? sourceAttribution(report.source)},
        clock_timestamp() - make_interval(secs => ${agoSeconds}::float8) FROM cur
      ON CONFLICT (provider_event_id) WHERE provider_event_id IS NOT NULL DO NOTHING
      RETURNING 1
    ),
    changed AS (${changed})
    SELECT changed.*, false AS duplicate FROM changed
    UNION ALL
    SELECT cur.*, false AS moved, NOT EXISTS (SELECT 1 FROM fresh) AS duplicate FROM cur WHERE NOT EXISTS (SELECT 1 FROM changed)`.execute(
    ex,
  );
  const first = r.rows[0];
  if (!first) return { row: undefined, moved: false, duplicate: false };
  const { moved, duplicate, ...row } = first;
  return { row: row as unknown as Selectable<DB[T]>, moved, duplicate };
}

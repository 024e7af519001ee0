import { sql, type RawBuilder, type Selectable } from 'kysely';
import { wellFormedJson } from '@hatch/contracts';
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

/** One report about one row, with what it writes: an element of a batch of status changes. */
export interface StatusChange {
  id: string;
  report: StatusReport;
  writes: StatusWrites;
}

const defined = (o: Record<string, unknown> | undefined, keepNull: boolean) =>
  Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined && (keepNull || v !== null)));

/**
 * The one shape of every status change after acceptance, for messages and emails alike: N
 * reports about rows of one table as ONE statement (no BEGIN / lock / insert / update / COMMIT
 * round trips, and one commit for a whole group: the workers' and webhooks' hot path, bench
 * P2). Per report, exactly what applying the reports one after the other, in the given order,
 * would do: lock the row, add a timeline row for every report, moved or not (a replayed provider
 * event, in the database or earlier in the same batch, changes nothing at all), move the status
 * only forward, write what goes with the move. Result i belongs to report i: `row` is undefined
 * when there is no such row, and the row as it stands after the whole batch otherwise.
 *
 * How: `cur` locks the rows in id order (FOR UPDATE: concurrent statements about one row apply
 * one after the other, each seeing the other's status, and two batches cannot deadlock on
 * each other's rows); `fresh` inserts the timeline rows in report order, skipping a provider
 * event already stored (or repeated in the batch); `fold` runs the reports that were fresh over
 * each row in order (a recursive CTE: status, the forward move of each, the columns that go
 * with the last moves); `changed` writes each row once, only when something changes. The
 * forward-only rule is the contract order, passed in per report as the statuses it may move
 * from (`movesFrom`), so it is defined once, in @hatch/contracts, not again in SQL. Column
 * values travel as JSON and are read back typed by the table's own row type
 * (jsonb_populate_record), so a batch mixes reports that write different columns.
 */
export async function applyStatusChanges<T extends SendTable>(
  ex: Executor,
  table: T,
  changes: readonly StatusChange[],
): Promise<StatusChangeResult<Selectable<DB[T]>>[]> {
  if (changes.length === 0) return [];
  const owner = table === 'messages' ? 'message_id' : 'email_id';
  const now = performance.now();
  const cols = { onMove: new Set<string>(), fill: new Set<string>(), replace: new Set<string>() };
  const input = changes.map(({ id, report, writes }, n) => {
    const move = !report.timelineOnly && writes.movesFrom.length > 0;
    const onMove = move ? defined(writes.onMove, true) : {};
    const fill = defined(writes.fill, false);
    const replace = defined(writes.replace, false);
    for (const c of Object.keys(onMove)) cols.onMove.add(c);
    for (const c of Object.keys(fill)) cols.fill.add(c);
    for (const c of Object.keys(replace)) cols.replace.add(c);
    return {
      n,
      id,
      status: report.status,
      moves_from: move ? writes.movesFrom : [],
      source: report.source,
      provider_code: report.providerCode ?? null,
      detail: report.detail ?? null,
      provider_event_id: report.providerEventId ?? null,
      sent_by: report.attribution?.sent_by ?? null,
      sent_by_source: report.attribution?.sent_by_source ?? sourceAttribution(report.source),
      ago: report.happenedAt === undefined ? 0 : Math.max(0, now - report.happenedAt) / 1000,
      on_move: onMove,
      fill,
      replace,
    };
  });
  const tbl = sql.table(table);
  const rowOf = (json: RawBuilder<unknown>) => sql`jsonb_populate_record(NULL::${tbl}, ${json})`;
  const t = (c: string) => sql.ref(`t.${c}`);
  const field = (rec: string, c: string) => sql`(x.${sql.raw(rec)}).${sql.id(c)}`;
  // each column written: its value after the batch, applied in the order fill → replace → move
  const sets = new Map<string, RawBuilder<unknown>>();
  const differs: RawBuilder<unknown>[] = [sql`x.moved_any`];
  for (const c of [...cols.fill].sort()) {
    sets.set(c, sql`COALESCE(${sets.get(c) ?? t(c)}, ${field('flr', c)})`);
    differs.push(sql`(${t(c)} IS NULL AND ${field('flr', c)} IS NOT NULL)`);
  }
  for (const c of [...cols.replace].sort()) {
    sets.set(c, sql`CASE WHEN x.rp ? ${c} THEN ${field('rpr', c)} ELSE ${sets.get(c) ?? t(c)} END`);
    differs.push(sql`(x.rp ? ${c} AND ${t(c)} IS DISTINCT FROM ${field('rpr', c)})`);
  }
  for (const c of [...cols.onMove].sort()) sets.set(c, sql`CASE WHEN x.om ? ${c} THEN ${field('omr', c)} ELSE ${sets.get(c) ?? t(c)} END`);
  const assignments = [
    sql`status = CASE WHEN x.moved_any THEN (${rowOf(sql`jsonb_build_object('status', x.status)`)}).status ELSE t.status END`,
    ...[...sets].map(([c, v]) => sql`${sql.id(c)} = ${v}`),
    sql`updated_at = ${new Date()}`,
  ];
  // `fold` runs each row's reports in order. When no row has two reports in the batch (the usual
  // group: concurrent jobs and callbacks about different messages) it is one step, a join, not a
  // recursive CTE: the same values as one round of the recursion from the row as it stands
  // (tested by both shapes' tests in status-change.test.ts); `final` then has one row per id.
  const distinct = new Set(changes.map((c) => c.id.toLowerCase().replace(/[^0-9a-f]/g, ''))).size === changes.length;
  const foldOnce = sql`fold AS (
      SELECT c.id, coalesce(a.k, 0) AS k,
        CASE WHEN c.status::text = ANY(a.moves_from) THEN a.status ELSE c.status::text END AS status,
        coalesce(c.status::text = ANY(a.moves_from), false) AS moved_any,
        CASE WHEN c.status::text = ANY(a.moves_from) THEN a.on_move ELSE '{}'::jsonb END AS om,
        coalesce(a.fill, '{}'::jsonb) AS fl,
        coalesce(a.replace, '{}'::jsonb) AS rp,
        CASE WHEN c.status::text = ANY(a.moves_from) THEN ARRAY[a.n] ELSE '{}'::int[] END AS mv,
        CASE WHEN a.n IS NULL THEN '{}'::int[] ELSE ARRAY[a.n] END AS ap
      FROM cur c LEFT JOIN applied a ON a.id = c.id
    ),
    final AS (
      SELECT *, ${rowOf(sql`om`)} AS omr, ${rowOf(sql`fl`)} AS flr, ${rowOf(sql`rp`)} AS rpr FROM fold
    )`;
  const foldInOrder = sql`fold AS (
      SELECT id, 0::bigint AS k, status::text AS status, false AS moved_any, '{}'::jsonb AS om, '{}'::jsonb AS fl, '{}'::jsonb AS rp,
        '{}'::int[] AS mv, '{}'::int[] AS ap
      FROM cur
      UNION ALL
      SELECT f.id, a.k,
        CASE WHEN f.status = ANY(a.moves_from) THEN a.status ELSE f.status END,
        f.moved_any OR f.status = ANY(a.moves_from),
        CASE WHEN f.status = ANY(a.moves_from) THEN f.om || a.on_move ELSE f.om END,
        a.fill || f.fl,
        f.rp || a.replace,
        CASE WHEN f.status = ANY(a.moves_from) THEN f.mv || a.n ELSE f.mv END,
        f.ap || a.n
      FROM fold f JOIN applied a ON a.id = f.id AND a.k = f.k + 1
    ),
    final AS (
      SELECT DISTINCT ON (id) *, ${rowOf(sql`om`)} AS omr, ${rowOf(sql`fl`)} AS flr, ${rowOf(sql`rp`)} AS rpr
      FROM fold ORDER BY id, k DESC
    )`;
  const r = await sql<Selectable<DB[T]> & { moved_ns: number[] | null; applied_ns: number[] | null }>`
    WITH RECURSIVE input AS (
      SELECT i.*, i.provider_event_id IS NULL OR row_number() OVER (PARTITION BY i.provider_event_id ORDER BY i.n) = 1 AS first_event
      FROM jsonb_to_recordset(${wellFormedJson(input)}::text::jsonb) AS i(
        n int, id uuid, status text, moves_from text[], source text, provider_code text, detail text, provider_event_id text,
        sent_by uuid, sent_by_source text, ago float8, on_move jsonb, fill jsonb, replace jsonb)
    ),
    cur AS (
      SELECT * FROM ${tbl} WHERE id IN (SELECT id FROM input) ORDER BY id FOR UPDATE
    ),
    fresh AS (
      INSERT INTO status_events (${sql.id(owner)}, status, provider_code, source, detail, provider_event_id, sent_by, sent_by_source, occurred_at)
      SELECT id, status, provider_code, source, detail, provider_event_id, sent_by, sent_by_source,
        clock_timestamp() - make_interval(secs => ago)
      FROM (SELECT i.* FROM input i WHERE i.first_event AND i.id IN (SELECT id FROM cur) ORDER BY i.n OFFSET 0) ordered
      ON CONFLICT (provider_event_id) WHERE provider_event_id IS NOT NULL DO NOTHING
      RETURNING provider_event_id
    ),
    applied AS (
      SELECT i.*, row_number() OVER (PARTITION BY i.id ORDER BY i.n) AS k FROM input i
      WHERE i.id IN (SELECT id FROM cur) AND i.first_event
        AND (i.provider_event_id IS NULL OR i.provider_event_id IN (SELECT provider_event_id FROM fresh))
    ),
    ${distinct ? foldOnce : foldInOrder},
    changed AS (
      UPDATE ${tbl} AS t SET ${sql.join(assignments)}
      FROM (SELECT * FROM final WHERE k > 0) x
      WHERE t.id = x.id AND (${sql.join(differs, sql` OR `)})
      RETURNING t.*, x.mv AS moved_ns, x.ap AS applied_ns
    )
    SELECT * FROM changed
    UNION ALL
    SELECT cur.*, x.mv, x.ap FROM cur JOIN final x ON x.id = cur.id WHERE cur.id NOT IN (SELECT id FROM changed)`.execute(ex);
  const rows = new Map<string, (typeof r.rows)[number]>(r.rows.map((row) => [(row as unknown as { id: string }).id, row]));
  return changes.map(({ id }, n) => {
    const found = rows.get(id.toLowerCase());
    if (!found) return { row: undefined, moved: false, duplicate: false };
    const { moved_ns, applied_ns, ...row } = found;
    return { row: row as unknown as Selectable<DB[T]>, moved: (moved_ns ?? []).includes(n), duplicate: !(applied_ns ?? []).includes(n) };
  });
}

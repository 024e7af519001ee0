/**
 * The journal reader: reads the change journal after a position and returns only rows that can
 * be relayed without ever skipping a lower id that may still commit. Journal ids are taken
 * before commit, so a gap in the ids is waited on until a GAP HORIZON (an xid) proves every
 * transaction that could fill it has ended (docs/realtime.md#the-gap-horizon).
 */
import { findJournalAfter, type Db, type JournalRow } from '@hatch/db';
import type { Logger } from '@hatch/log';
import { withTimeout } from '@hatch/async';
import type { BridgeMetrics } from './metrics.js';

/** A gap still open is re-checked this often. */
export const GAP_RECHECK_MS = 25;
const GAP_WARN_MS = 10_000;
/** Bound of the horizon queries (raw postgres.js queries are not under @hatch/db's query bound). */
export const HORIZON_QUERY_TIMEOUT_MS = 5000;

export interface JournalRead {
  /** consecutive rows after the position, none past an open gap */
  rows: JournalRow[];
  /** idle: nothing more now; more: read again at once; blocked: a gap is open, re-check in GAP_RECHECK_MS */
  verdict: 'idle' | 'more' | 'blocked';
}

export interface JournalReader {
  read(after: bigint): Promise<JournalRead>;
  /** Forgets a gap being waited on (a new active term starts from the persisted position). */
  reset(): void;
}

interface Gap {
  /** highest id of the gap, as first seen */
  upTo: bigint;
  horizon: bigint;
  cleared: boolean;
  since: number;
  warned: boolean;
}

export function createJournalReader(
  deps: { db: Db; log: Logger; metrics: Pick<BridgeMetrics, 'gapWaits' | 'gapSkipped'> },
  opts: { batchSize: number },
): JournalReader {
  const { db, log, metrics: m } = deps;
  let gap: Gap | undefined;

  async function takeHorizon(): Promise<bigint> {
    const [r] = await withTimeout(
      db.sql<{ x: string }[]>`SELECT pg_current_xact_id()::text AS x`,
      HORIZON_QUERY_TIMEOUT_MS,
      'horizon query timed out',
    );
    return BigInt(r?.x ?? '0');
  }

  async function horizonPassed(h: bigint): Promise<boolean> {
    const [r] = await withTimeout(
      db.sql<{ x: string }[]>`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS x`,
      HORIZON_QUERY_TIMEOUT_MS,
      'horizon check timed out',
    );
    return BigInt(r?.x ?? '0') >= h;
  }

  return {
    reset() {
      gap = undefined;
    },
    async read(after) {
      const rows = await findJournalAfter(db.db, after.toString(), opts.batchSize);
      if (rows.length === 0) return { rows: [], verdict: 'idle' };
      const out: JournalRow[] = [];
      let expected = after + 1n;
      let verdict: JournalRead['verdict'] | undefined;
      for (const row of rows) {
        const id = BigInt(row.id);
        if (id !== expected) {
          if (gap?.cleared && id - 1n <= gap.upTo) {
            // Proven: ids expected..id-1 never committed.
            m.gapSkipped.inc(Number(id - expected));
            log.debug({ from: expected.toString(), to: (id - 1n).toString() }, 'skipping journal ids that never committed');
          } else {
            if (!gap || id - 1n > gap.upTo) {
              gap = { upTo: id - 1n, horizon: await takeHorizon(), cleared: false, since: Date.now(), warned: false };
              m.gapWaits.inc();
            }
            if (await horizonPassed(gap.horizon)) {
              gap.cleared = true; // the next read (a newer snapshot) decides
              verdict = 'more';
            } else {
              verdict = 'blocked';
              if (!gap.warned && Date.now() - gap.since > GAP_WARN_MS) {
                gap.warned = true;
                log.warn(
                  { waitingFor: expected.toString(), horizon: gap.horizon.toString() },
                  'a long transaction holds a journal id; relay waits for it',
                );
              }
            }
            break;
          }
        }
        out.push(row);
        expected = id + 1n;
        if (gap && expected > gap.upTo) gap = undefined;
      }
      return { rows: out, verdict: verdict ?? (rows.length === opts.batchSize ? 'more' : 'idle') };
    },
  };
}

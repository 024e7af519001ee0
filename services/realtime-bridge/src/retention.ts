/** Journal retention: rows older than the resume window AND already relayed are deleted, in bounded batches. */
import { deleteOldJournalRows, type Db } from '@hatch/db';
import type { BridgeMetrics } from './metrics.js';

/** One run deletes at most this many batches; the rest waits for the next run. */
export const RETENTION_MAX_BATCHES_PER_RUN = 20;

export interface RetentionOptions {
  /** journal rows older than this are deleted */
  retentionMs: number;
  /** the bridge's position: nothing after it is deleted, whatever its age */
  relayedUpTo: bigint;
  batch: number;
  stopping(): boolean;
}

/** Returns how many rows it deleted. */
export async function deleteRelayedJournal(db: Db, m: Pick<BridgeMetrics, 'deleted'>, opts: RetentionOptions): Promise<number> {
  let total = 0;
  for (let i = 0; i < RETENTION_MAX_BATCHES_PER_RUN && !opts.stopping(); i++) {
    const n = await deleteOldJournalRows(db.db, {
      olderThanMs: opts.retentionMs,
      relayedUpTo: opts.relayedUpTo.toString(),
      limit: opts.batch,
    });
    m.deleted.inc(n);
    total += n;
    if (n < opts.batch) break;
  }
  return total;
}

/**
 * Group commit of sends (the mechanism and its bounds: @hatch/db createGroupCommit).
 * `POST /api/send_message` hands its validated message here and answers once the statement
 * holding it (`acceptMessages`) has committed (docs/architecture.md, rule 1: a 202 means the row
 * is committed). One commit, one WAL flush and one journal NOTIFY serve a whole group, which is
 * what lifts the send rate from the per-commit limit towards the per-row limit (bench P1;
 * NOTIFY serialises notifying commits cluster-wide: P3's raw limit in bench/README.md). Past
 * `maxQueued` waiting sends a send is refused with 503 + Retry-After; a lost connection fails
 * the group with the connection error (503).
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import {
  acceptMessages,
  createGroupCommit,
  type AcceptMessage,
  type AcceptOptions,
  type AcceptOutcome,
  type Db,
  type GroupCommitOptions,
} from '@hatch/db';
import type { Logger } from '@hatch/log';
import { DEPENDENCY_RETRY_AFTER_S, HttpError } from './errors.js';

export type SendBatcherOptions = GroupCommitOptions;

export interface SendBatcher {
  accept(item: AcceptMessage): Promise<AcceptOutcome>;
}

/** sends waiting for their group commit before a new one gets 503 + Retry-After (memory-budget.ts counts them) */
export const SEND_BATCHER_MAX_QUEUED = 5000;

export function createSendBatcher(
  deps: { db: Db; log: Logger; registry: Registry; accept?: AcceptOptions },
  opts: SendBatcherOptions = {},
): SendBatcher {
  const log = deps.log.child({ component: 'send-batcher' });
  const sizes = new Histogram({
    name: 'hatch_send_batch_size',
    help: 'messages written by one accept statement (group commit)',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [deps.registry],
  });
  const split = new Counter({
    name: 'hatch_send_batch_split_total',
    help: 'batches retried message by message after a failure',
    registers: [deps.registry],
  });
  const group = createGroupCommit<AcceptMessage, AcceptOutcome>(
    {
      write: (items) => acceptMessages(deps.db.db, items, deps.accept),
      full: () =>
        new HttpError('SERVICE_UNAVAILABLE', 'too many sends waiting to be stored; retry shortly', {
          headers: { 'retry-after': String(DEPENDENCY_RETRY_AFTER_S) },
        }),
      onGroup: (size) => sizes.observe(size),
      onSplit: (err, size) => {
        split.inc();
        log.warn(
          { err: { message: (err as Error).message, code: (err as { code?: string }).code }, size },
          'send batch failed; writing its messages one by one',
        );
      },
    },
    {
      maxBatch: opts.maxBatch ?? 200,
      // One statement at a time measured best on one node (bench P1: 2.6k sends/s against 2.3k with
      // two, p99 at half rate the same): PostgreSQL's CPU is the limit there, and a second statement
      // in flight only splits the waiting sends into smaller groups, i.e. more commits and NOTIFYs.
      maxInFlight: opts.maxInFlight ?? 1,
      maxQueued: opts.maxQueued ?? SEND_BATCHER_MAX_QUEUED,
    },
  );
  return { accept: (item) => group.submit(item) };
}

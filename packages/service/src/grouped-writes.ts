/**
 * groupedWrites: a group commit (@hatch/db createGroupCommit) with its metric and its log line,
 * for the writes a busy process makes many of at once: the workers' claims and status writes,
 * the gateway's provider status callbacks. Concurrent callers each submit one item and are
 * answered once the statement holding it has committed; one statement per group.
 * `hatch_write_group_size{writes}` says how large the groups get.
 */
import { Histogram, type Registry } from 'prom-client';
import { createGroupCommit, type GroupCommitOptions } from '@hatch/db';
import type { Logger } from '@hatch/log';

const GROUP_SIZE = 'hatch_write_group_size';

/** items waiting for a grouped write before a new one is refused (each is a job or a request in flight) */
export const GROUPED_WRITES_MAX_QUEUED = 2000;

export interface GroupedWritesOptions<I, O> extends GroupCommitOptions {
  /** metric label and log name: message_claims, message_status, … */
  name: string;
  /** one statement for the whole group; result i for item i */
  write(items: I[]): Promise<O[]>;
  /** the error past `maxQueued` (default: a plain Error, which a job handler turns into a retry) */
  full?(): Error;
}

export function groupedWrites<I, O>(deps: { log: Logger; registry: Registry }, o: GroupedWritesOptions<I, O>): (item: I) => Promise<O> {
  const sizes =
    (deps.registry.getSingleMetric(GROUP_SIZE) as Histogram<'writes'> | undefined) ??
    new Histogram({
      name: GROUP_SIZE,
      help: 'items written by one grouped statement (group commit), by kind of write',
      labelNames: ['writes'],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128],
      registers: [deps.registry],
    });
  const log = deps.log.child({ component: 'grouped-writes', writes: o.name });
  const group = createGroupCommit<I, O>(
    {
      write: (items) => o.write(items),
      full: () => o.full?.() ?? new Error(`too many ${o.name} writes waiting; retry shortly`),
      onGroup: (size) => sizes.observe({ writes: o.name }, size),
      onSplit: (err, size) =>
        log.warn(
          { err: { message: (err as Error).message, code: (err as { code?: string }).code }, size },
          'grouped write failed; writing its items one by one',
        ),
    },
    { maxBatch: o.maxBatch ?? 100, maxInFlight: o.maxInFlight ?? 1, maxQueued: o.maxQueued ?? GROUPED_WRITES_MAX_QUEUED },
  );
  return (item) => group.submit(item);
}

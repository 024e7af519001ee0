/**
 * Group commit: the one mechanism that turns many concurrent writes of one kind into few
 * statements (the gateway's sends, the workers' claims and status writes, the providers'
 * status callbacks). Each caller submits one item and is answered once the statement holding
 * it has committed (or failed), so "answered" still means "committed".
 *
 * While fewer than `maxInFlight` statements are being written, an item is written at once (a
 * group of one: no added latency when idle). When all slots are busy, arriving items wait and
 * the next free slot writes all of them (up to `maxBatch`) as ONE statement: one round trip,
 * one commit (one WAL flush) and one journal NOTIFY for the whole group. The busier the
 * process, the larger the groups; nothing waits on a timer.
 *
 * Bounds (docs/architecture.md, rule 4): at most `maxQueued` items wait; past that a submit is
 * refused at once with the caller's `full()` error. A group that fails for a reason other than
 * a lost connection (a deadlock, a constraint, one bad item) is retried item by item, in order, so one
 * bad item cannot fail the others; a lost connection fails every item of the group with the
 * connection error (the callers map it to 503 or a job retry).
 */
import { isConnectionError } from './client.js';

export interface GroupCommitOptions {
  /** most items written by one statement */
  maxBatch?: number;
  /** statements being written at the same time (each holds one pool connection) */
  maxInFlight?: number;
  /** items waiting for a slot; past it a submit is refused with `full()` */
  maxQueued?: number;
}

export interface GroupCommitWriter<I, O> {
  /** writes the items as one statement; result i belongs to item i */
  write(items: I[]): Promise<O[]>;
  /** the error a submit is refused with when `maxQueued` items already wait */
  full(): Error;
  /** each statement's group size (a metric) */
  onGroup?(size: number): void;
  /** a group that failed and is retried item by item */
  onSplit?(err: unknown, size: number): void;
}

export interface GroupCommit<I, O> {
  submit(item: I): Promise<O>;
  /** items waiting for a slot */
  queued(): number;
}

interface Waiting<I, O> {
  item: I;
  resolve(o: O): void;
  reject(err: unknown): void;
}

export function createGroupCommit<I, O>(w: GroupCommitWriter<I, O>, opts: GroupCommitOptions = {}): GroupCommit<I, O> {
  const maxBatch = opts.maxBatch ?? 200;
  const maxInFlight = opts.maxInFlight ?? 1;
  const maxQueued = opts.maxQueued ?? 5000;
  const queue: Waiting<I, O>[] = [];
  let inFlight = 0;

  async function write(group: Waiting<I, O>[]): Promise<void> {
    w.onGroup?.(group.length);
    try {
      const outcomes = await w.write(group.map((x) => x.item));
      group.forEach((x, i) => x.resolve(outcomes[i] as O));
      return;
    } catch (err) {
      if (group.length === 1 || isConnectionError(err)) {
        for (const x of group) x.reject(err);
        return;
      }
      w.onSplit?.(err, group.length);
    }
    // One after another, in the group's order, on this slot: the items keep the order they
    // were submitted in (reports about one row apply in that order), and the retry holds one
    // pool connection like the group did (maxInFlight stays the bound).
    for (const x of group) {
      try {
        const [outcome] = await w.write([x.item]);
        x.resolve(outcome as O);
      } catch (err) {
        x.reject(err);
      }
    }
  }

  function pump(): void {
    while (inFlight < maxInFlight && queue.length > 0) {
      const group = queue.splice(0, maxBatch);
      inFlight++;
      void write(group).finally(() => {
        inFlight--;
        pump();
      });
    }
  }

  return {
    submit(item) {
      if (queue.length >= maxQueued) return Promise.reject(w.full());
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        pump();
      });
    },
    queued: () => queue.length,
  };
}

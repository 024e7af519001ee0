/**
 * A bound on costly work requested from outside (issue 14: a flood of bogus signed webhooks must
 * not starve the API): at most `concurrency` tasks run at once and at most `queue` wait for a
 * turn; past that a task is refused at once, so the caller can answer 503 + Retry-After without
 * doing the work. Whatever the size of a flood, it costs at most `concurrency` tasks' worth of
 * CPU at a time and `queue` waiting requests' worth of memory.
 */
export interface WorkGate {
  /** true when a task offered now would be refused (lets a caller refuse before reading a body) */
  readonly full: boolean;
  /** tasks running or waiting */
  readonly pending: number;
  /** the task's promise once it has had its turn, or undefined (refused, not run) when full */
  tryRun<T>(task: () => Promise<T>): Promise<T> | undefined;
}

export function createWorkGate(opts: { concurrency: number; queue: number }): WorkGate {
  let running = 0;
  const waiting: Array<() => void> = [];
  const isFull = () => running + waiting.length >= opts.concurrency + opts.queue;
  // A finished task hands its slot straight to the next waiting one.
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else running--;
  };
  return {
    get full() {
      return isFull();
    },
    get pending() {
      return running + waiting.length;
    },
    tryRun(task) {
      if (isFull()) return undefined;
      let turn: Promise<void>;
      if (running < opts.concurrency) {
        running++;
        turn = Promise.resolve();
      } else {
        turn = new Promise<void>((resolve) => waiting.push(resolve));
      }
      return turn.then(task).finally(release);
    },
  };
}

/**
 * Background: the emulator's timers and outgoing webhook calls, owned in one place so stop()
 * can cancel every pending sleep and in-flight request and then wait for them to settle:
 * nothing fires into a test's receiver after its emulator has stopped.
 *
 * Sleeps are plain timers kept in a Set, not `timers/promises` with an AbortSignal: every
 * accepted message sleeps three times, and adding thousands of listeners to one EventTarget
 * is quadratic (it scans for duplicates); it took ~19 % of the CPU under load when profiled.
 */
import type { Logger } from '@hatch/log';

export function isAbortError(err: unknown): boolean {
  return (err as { name?: unknown } | null)?.name === 'AbortError';
}

function abortError(): Error {
  return Object.assign(new Error('emulator stopping'), { name: 'AbortError' });
}

interface PendingSleep {
  timer: NodeJS.Timeout;
  reject(err: Error): void;
}

export class Background {
  private readonly controller = new AbortController();
  private readonly tasks = new Set<Promise<void>>();
  private readonly sleeps = new Set<PendingSleep>();

  constructor(private readonly log: Logger) {}

  /** Aborted when stop() begins (the webhook client destroys its sockets on it). */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get stopping(): boolean {
    return this.controller.signal.aborted;
  }

  /** Resolves after `ms`; rejects with an AbortError once stop() has begun. */
  sleep(ms: number): Promise<void> {
    if (this.stopping) return Promise.reject(abortError());
    return new Promise<void>((resolve, reject) => {
      const pending: PendingSleep = {
        timer: setTimeout(() => {
          this.sleeps.delete(pending);
          resolve();
        }, ms),
        reject,
      };
      this.sleeps.add(pending);
    });
  }

  /** Runs `fn` detached from the request that started it; failures are logged, never thrown. */
  run(task: string, fn: () => Promise<void>): void {
    if (this.stopping) return;
    const p: Promise<void> = fn()
      .catch((err: unknown) => {
        if (!isAbortError(err)) this.log.warn({ err, task }, 'background task failed');
      })
      .finally(() => this.tasks.delete(p));
    this.tasks.add(p);
  }

  /** Cancels every sleep and webhook call, then waits for the tasks to unwind. */
  async stop(): Promise<void> {
    this.controller.abort();
    for (const s of this.sleeps) {
      clearTimeout(s.timer);
      s.reject(abortError());
    }
    this.sleeps.clear();
    await Promise.allSettled([...this.tasks]);
  }
}

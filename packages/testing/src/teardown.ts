import type { Teardownable } from './db.js';

/**
 * A teardown step with a bound. A step still running after `timeoutMs` fails the test with its
 * name and what keeps the process busy, instead of holding the whole file until the runner's
 * timeout with no clue which step hung; the teardowns registered before it still run.
 */
export function boundedTeardown(t: Teardownable, name: string, fn: () => unknown, timeoutMs = 20_000): void {
  t.teardown(async () => {
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `teardown step "${name}" still running after ${timeoutMs} ms (active: ${process.getActiveResourcesInfo().join(', ')})`,
            ),
          ),
        timeoutMs,
      );
    });
    try {
      await Promise.race([Promise.resolve().then(fn), hung]);
    } finally {
      clearTimeout(timer);
    }
  });
}

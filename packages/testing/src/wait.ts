/**
 * waitFor: poll a condition until it holds or a deadline passes. Tests wait on conditions,
 * never on bare sleeps (a sleep is either too short on a loaded CI machine or wastes time).
 */
export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  message?: string;
}

export async function waitFor(cond: () => boolean | Promise<boolean>, opts: WaitOptions = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 25;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await cond()) return;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError ? ` (last error: ${(lastError as Error).message})` : '';
      throw new Error(`waitFor timed out after ${timeoutMs} ms: ${opts.message ?? 'condition never held'}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Polls `fn` until it returns a value that is not undefined. */
export async function waitForValue<T>(fn: () => T | undefined | Promise<T | undefined>, opts: WaitOptions = {}): Promise<T> {
  let value: T | undefined;
  await waitFor(async () => {
    value = await fn();
    return value !== undefined;
  }, opts);
  return value as T;
}

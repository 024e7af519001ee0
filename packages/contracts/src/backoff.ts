/**
 * The one retry-delay formula (issue 16): exponential, capped, optionally jittered. Every
 * retry loop in Hatch (job redelivery, outbox re-publish, the database driver's reconnect, the
 * emulator's webhook retries, the web UI's stream reconnect) computes its wait here, so a
 * change of policy is one change. Pure (no Node APIs): the web UI uses it too.
 */

export interface Backoff {
  /** the wait before the first retry (attempt 0) */
  baseMs: number;
  /** no wait is longer than this (before jitter) */
  maxMs: number;
  /**
   * spread as a fraction of the wait, 0 to 1: 0.25 waits 75 % to 125 % of it, so clients that
   * failed together (a gateway restart) do not all come back in the same instant
   */
  jitter?: number;
}

/** The wait before retry number `attempt` (0 for the first): baseMs · 2^attempt, at most maxMs, then jittered. */
export function backoffDelay(policy: Backoff, attempt: number, random: () => number = Math.random): number {
  const exponent = Math.max(0, attempt);
  // 2 ** 1024 is Infinity: the cap still applies, so no attempt count overflows the wait.
  const wait = Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
  const jitter = policy.jitter ?? 0;
  return jitter > 0 ? wait * (1 - jitter + 2 * jitter * random()) : wait;
}

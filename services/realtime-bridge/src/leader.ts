/**
 * Leader election: exactly one active bridge, the holder of a PostgreSQL advisory lock on a
 * dedicated connection (docs/realtime.md#one-active-bridge). postgres.js reconnects silently and
 * a new backend does not hold the lock, so the holder re-checks that its backend is the same one.
 */
import type postgres from 'postgres';
import type { Logger } from '@hatch/log';
import { withTimeout } from '@hatch/async';

/** pg advisory lock key of the bridge election ("hatch_rb"); advisory locks are per database. */
export const BRIDGE_LOCK_KEY = '7521962307316851298';
/** Bounds of the lock's two queries (a step-down's part in stepDownBoundMs, bridge.ts). */
export const LOCK_TAKE_TIMEOUT_MS = 5000;
export const LOCK_CHECK_TIMEOUT_MS = 3000;

/** taken: this replica holds it now; busy: another holds it; unreachable: the attempt failed (PostgreSQL down or gone) */
export type LockAttempt = 'taken' | 'busy' | 'unreachable';

export interface LeaderLock {
  /** Takes the lock if free (opening the dedicated connection when needed). */
  tryLock(): Promise<LockAttempt>;
  /** Still the backend that took the lock, hence still its holder? */
  held(): Promise<boolean>;
  /** Ends the dedicated connection: the lock is free at once for a standby. */
  release(): Promise<void>;
}

/** `open` opens a dedicated single connection (never recycled by a pool: closing it hands the lock over). */
export function createLeaderLock(open: () => postgres.Sql, log: Logger): LeaderLock {
  let conn: postgres.Sql | undefined;
  let pid: number | undefined;

  async function release(): Promise<void> {
    const c = conn;
    conn = undefined;
    pid = undefined;
    await c?.end({ timeout: 1 }).catch(() => {});
  }

  return {
    release,
    async tryLock() {
      conn ??= open();
      try {
        const [r] = await withTimeout(
          conn<{ ok: boolean; pid: number }[]>`SELECT pg_try_advisory_lock(${BRIDGE_LOCK_KEY}::bigint) AS ok, pg_backend_pid() AS pid`,
          LOCK_TAKE_TIMEOUT_MS,
          'lock query timed out',
        );
        if (r?.ok) pid = r.pid;
        return r?.ok === true ? 'taken' : 'busy';
      } catch (err) {
        log.warn({ err: { message: (err as Error).message } }, 'advisory lock attempt failed');
        await release();
        return 'unreachable';
      }
    },
    async held() {
      if (!conn || pid === undefined) return false;
      try {
        const [r] = await withTimeout(
          conn<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`,
          LOCK_CHECK_TIMEOUT_MS,
          'lock check timed out',
        );
        return r?.pid === pid;
      } catch (err) {
        log.warn({ err: { message: (err as Error).message } }, 'lock connection check failed');
        return false;
      }
    },
  };
}

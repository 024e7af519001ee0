/**
 * startBridge: relays the change journal (sql/0002) onto JetStream `<P>_EVENTS`, in journal order,
 * one message per batch of consecutive journal rows, `Nats-Msg-Id` = the batch's last journal id. The argument for how is docs/realtime.md;
 * this file is the loop that joins its parts: a standby waits for the lock (leader.ts); the
 * active one reads (journal-reader.ts), publishes (publisher.ts), persists its position, sends
 * heartbeats, runs retention (retention.ts), and re-checks the lock between passes.
 *
 * Longer than ~350 lines on purpose: the standby/active loop, its step-down bounds and its
 * backoffs share one state (position, lock, failures); every part with a seam is its own module.
 */
import type postgres from 'postgres';
import { backoffDelay, natsNames, type Backoff } from '@hatch/contracts';
import { ensureBridgePosition, markBridgePosition, type Db } from '@hatch/db';
import type { Logger } from '@hatch/log';
import { withTimeout } from '@hatch/async';
import { type Bus } from '@hatch/bus';
import type { Registry } from 'prom-client';
import { createJournalReader, GAP_RECHECK_MS, HORIZON_QUERY_TIMEOUT_MS } from './journal-reader.js';
import { createLeaderLock, LOCK_CHECK_TIMEOUT_MS } from './leader.js';
import { createBridgeMetrics } from './metrics.js';
import { createChainedPublisher, HEARTBEAT_TIMEOUT_MS, isChainBroken, PUBLISH_TIMEOUT_MS, TAIL_READ_TIMEOUT_MS } from './publisher.js';
import { deleteRelayedJournal } from './retention.js';

export const NOTIFY_CHANNEL = 'hatch_changes';

export type BridgeRole = 'active' | 'standby' | 'stopped';

/** Opens a dedicated single connection (the composition root owns the URL). */
export type OpenConnection = (purpose: 'lock' | 'listen', hooks?: { onnotify?: () => void; onclose?: () => void }) => postgres.Sql;

export interface BridgeDeps {
  db: Db;
  bus: Bus;
  registry: Registry;
  log: Logger;
  openConnection: OpenConnection;
}

export interface BridgeOptions {
  natsPrefix: string;
  /** bridge group: the name of its position row */
  name?: string;
  batchSize?: number;
  pollIntervalMs?: number;
  lockRetryMs?: number;
  heartbeatMs?: number;
  /** journal rows older than this (and relayed) are deleted */
  retentionMs?: number;
  retentionIntervalMs?: number;
  retentionBatch?: number;
  /**
   * The relay is unhealthy once its last successful journal read is older than this: /readyz
   * says not ready, and an active bridge whose passes keep failing that long steps down
   */
  relayStallMs?: number;
}

/** The relay's health for /readyz (relayHealth below). */
export interface RelayHealth {
  ok: boolean;
  /** why not ok */
  reason?: string;
  /** ms since the last successful journal read of this active term (null: not active) */
  lastReadAgeMs: number | null;
  /** consecutive failed attempts (lock, takeover, or relay passes) behind the current wait */
  failures: number;
}

export interface RunningBridge {
  stop(): Promise<void>;
  role(): BridgeRole;
  /** last relayed journal id (as a string) */
  position(): string;
  health(): RelayHealth;
}

/** A failed relay pass waits before the next (backoffDelay: doubling from 100 ms to MAX_BACKOFF_MS). */
export const MAX_BACKOFF_MS = 5000;
export const PASS_BACKOFF: Backoff = { baseMs: 100, maxMs: MAX_BACKOFF_MS, jitter: 0.2 };
/**
 * A failed lock attempt or takeover (PostgreSQL unreachable, its database gone, a takeover read
 * failing) waits lockRetryMs, then doubling to this: a bridge whose database is gone idles.
 */
export const MAX_LOCK_BACKOFF_MS = 30_000;
/** Default of BridgeOptions.relayStallMs. */
export const DEFAULT_RELAY_STALL_MS = 30_000;
const LISTEN_TIMEOUT_MS = 5000;
/**
 * The relayed position is persisted at most this often while relaying (and at a clean stop, and
 * before retention deletes anything): one PostgreSQL round trip a second instead of one per pass
 * (per commit at 100 single-row commits/s, bench P6). A takeover re-reads from the persisted
 * position, so it re-reads at most this much more; the rows the stream already holds are passed
 * over by the takeover rule (docs/realtime.md#one-message-per-journal-batch), as after a crash.
 */
export const POSITION_PERSIST_MS = 1000;

/**
 * The longest an active bridge goes on as active once its lock backend is gone (PostgreSQL down,
 * or the backend ended), from its settings and the pool's bounds; every wait on the way is
 * bounded (docs/realtime.md#how-soon-a-lost-lock-is-noticed): the lock check falls due
 * (lockRetryMs); the round under way first re-issues LISTEN, then its pass ends at the first
 * PostgreSQL operation that fails (a pool acquire + query, or a horizon query), after a read of
 * the stream's tail, the publishes in flight and a heartbeat settled; the failed pass backs off; then the check itself.
 */
export function stepDownBoundMs(o: { lockRetryMs: number; pool: { acquireTimeoutMs: number; queryTimeoutMs: number } }): number {
  const failingDbOperation = Math.max(o.pool.acquireTimeoutMs + o.pool.queryTimeoutMs, HORIZON_QUERY_TIMEOUT_MS);
  const pass = TAIL_READ_TIMEOUT_MS + PUBLISH_TIMEOUT_MS + HEARTBEAT_TIMEOUT_MS + failingDbOperation;
  return o.lockRetryMs + LISTEN_TIMEOUT_MS + pass + MAX_BACKOFF_MS * (1 + (PASS_BACKOFF.jitter ?? 0)) + LOCK_CHECK_TIMEOUT_MS;
}

export function startBridge(deps: BridgeDeps, opts: BridgeOptions): RunningBridge {
  const log = deps.log.child({ component: 'bridge' });
  const names = natsNames(opts.natsPrefix);
  const name = opts.name ?? 'default';
  const batchSize = opts.batchSize ?? 500;
  const pollIntervalMs = opts.pollIntervalMs ?? 1000;
  const lockRetryMs = opts.lockRetryMs ?? 1000;
  const heartbeatMs = opts.heartbeatMs ?? 5000;
  const retentionMs = opts.retentionMs ?? 24 * 3600 * 1000;
  const retentionIntervalMs = opts.retentionIntervalMs ?? 60_000;
  const retentionBatch = opts.retentionBatch ?? 5000;
  const relayStallMs = opts.relayStallMs ?? DEFAULT_RELAY_STALL_MS;
  const lockBackoff: Backoff = { baseMs: lockRetryMs, maxMs: Math.max(lockRetryMs, MAX_LOCK_BACKOFF_MS), jitter: 0.2 };
  const m = createBridgeMetrics(deps.registry);
  const lock = createLeaderLock(() => deps.openConnection('lock'), log);
  const reader = createJournalReader({ db: deps.db, log, metrics: m }, { batchSize });
  const publisher = createChainedPublisher({ bus: deps.bus, log, metrics: m }, names, { maxEvents: batchSize });

  let role: BridgeRole = 'standby';
  let stopping = false;
  let pos = 0n;
  /** the position as last persisted in this term, and when */
  let persisted = 0n;
  let persistedAt = 0;
  let wakeReason = 'poll';
  let wakeUp: (() => void) | undefined;
  // a wake-up that arrives while a pass runs is kept, so the next pause returns at once
  let pendingWake = false;
  let listenConn: postgres.Sql | undefined;
  let listening = false;
  /** when this active term last read the journal successfully (the relay's health) */
  let lastReadAt = 0;
  /** consecutive failed lock attempts, takeovers or stalled terms (the wait between lock attempts) */
  let lockFailures = 0;
  /** consecutive failed relay passes of this active term (the wait between passes) */
  let passFailures = 0;
  let failureReason: string | undefined;
  const stopWaiters = new Set<() => void>();

  const wake = (reason: string) => {
    wakeReason = reason;
    pendingWake = true;
    wakeUp?.();
  };
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      if (stopping || pendingWake) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wakeUp = undefined;
        resolve();
      }
      wakeUp = done;
    });

  /**
   * A retry wait: only stop() ends it early. A NOTIFY or a LISTEN connection closing (which a
   * database going away does at every attempt) must not cut a backoff short, or a bridge whose
   * database is gone retries as fast as its connections fail.
   */
  const backoffWait = (ms: number) =>
    new Promise<void>((resolve) => {
      if (stopping) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        stopWaiters.delete(done);
        resolve();
      }
      stopWaiters.add(done);
    });

  const lockFailed = (reason: string) => {
    lockFailures++;
    failureReason = reason;
  };

  function health(): RelayHealth {
    if (role === 'active') {
      const age = Date.now() - lastReadAt;
      if (age > relayStallMs)
        return {
          ok: false,
          reason: `no successful journal read for ${age} ms (bound ${relayStallMs} ms)`,
          lastReadAgeMs: age,
          failures: passFailures,
        };
      return { ok: true, lastReadAgeMs: age, failures: passFailures };
    }
    if (lockFailures > 0) return { ok: false, reason: failureReason ?? 'failing', lastReadAgeMs: null, failures: lockFailures };
    return { ok: true, lastReadAgeMs: null, failures: 0 };
  }

  async function ensureListening(): Promise<void> {
    if (listening) return;
    listenConn ??= deps.openConnection('listen', {
      onnotify: () => wake('notify'),
      onclose: () => {
        // re-LISTEN (and catch up) at once rather than at the next poll
        listening = false;
        wake('listen');
      },
    });
    try {
      await withTimeout(listenConn`LISTEN hatch_changes`, LISTEN_TIMEOUT_MS, 'LISTEN timed out');
      listening = true;
      log.info('listening for journal wake-ups');
      wakeReason = 'listen';
    } catch (err) {
      log.warn({ err: { message: (err as Error).message } }, 'LISTEN failed; polling meanwhile');
    }
  }

  /** One read + publish pass. */
  async function relayStep(): Promise<'idle' | 'more' | 'blocked'> {
    const { rows, verdict } = await reader.read(pos);
    lastReadAt = Date.now();
    if (rows.length === 0 && verdict === 'idle') return 'idle';
    const before = pos;
    let published: number;
    try {
      published = await publisher.publish(before, rows, {
        keepGoing: () => !stopping && role === 'active',
        onSettled: (row) => {
          pos = BigInt(row.id);
        },
      });
    } finally {
      if (pos !== before) m.position.set(Number(pos));
      await persistPosition(false);
    }
    if (published > 0) m.catchups.inc({ reason: wakeReason });
    return verdict;
  }

  /** Persists the position when it moved, at most every POSITION_PERSIST_MS unless `now`. */
  async function persistPosition(now: boolean): Promise<void> {
    if (pos === persisted || (!now && Date.now() - persistedAt < POSITION_PERSIST_MS)) return;
    const at = pos;
    await markBridgePosition(deps.db.db, name, at.toString());
    persisted = at;
    persistedAt = Date.now();
  }

  /**
   * One active term, from taking the lock to losing it, stalling or stopping. Whatever ends it
   * (a throw included: the takeover read failing, say), the lock and LISTEN connections are
   * ended on the way out, so a standby can take over. Resolves 'stalled' when the relay failed
   * for relayStallMs, so the caller backs off before trying the lock again.
   */
  async function runActive(): Promise<'lost' | 'stalled' | 'stopped'> {
    role = 'active';
    m.active.set(1);
    lastReadAt = Date.now();
    try {
      return await relayWhileHeld();
    } finally {
      role = stopping ? 'stopped' : 'standby';
      m.active.set(0);
      listening = false;
      const lc = listenConn;
      listenConn = undefined;
      await lc?.end({ timeout: 1 }).catch(() => {});
      await lock.release();
    }
  }

  async function relayWhileHeld(): Promise<'lost' | 'stalled' | 'stopped'> {
    m.takeovers.inc();
    pos = BigInt(await ensureBridgePosition(deps.db.db, name));
    persisted = pos;
    persistedAt = Date.now();
    lockFailures = 0;
    passFailures = 0;
    reader.reset();
    publisher.forgetTip();
    m.position.set(Number(pos));
    log.info({ position: pos.toString() }, 'became the active bridge');
    wakeReason = 'takeover';
    let lastLockCheck = Date.now();
    let lastHeartbeat = 0;
    let lastRetention = 0;
    while (!stopping) {
      const now = Date.now();
      if (now - lastLockCheck >= lockRetryMs) {
        lastLockCheck = now;
        if (!(await lock.held())) {
          log.warn('lost the advisory lock connection; stepping down');
          return 'lost';
        }
      }
      await ensureListening();
      pendingWake = false;
      const passFrom = pos;
      try {
        const r = await relayStep();
        if (Date.now() - lastHeartbeat >= heartbeatMs) {
          lastHeartbeat = Date.now();
          await publisher.heartbeat(pos);
        }
        if (Date.now() - lastRetention >= retentionIntervalMs) {
          lastRetention = Date.now();
          await persistPosition(true); // a takeover never starts before rows retention deleted
          await deleteRelayedJournal(deps.db, m, { retentionMs, relayedUpTo: pos, batch: retentionBatch, stopping: () => stopping });
        }
        passFailures = 0;
        if (r === 'more') continue;
        // idle: what the last passes relayed is persisted once due (the pause is at most a poll)
        await persistPosition(false);
        wakeReason = 'poll';
        // idle: wake on NOTIFY, else poll, and re-check the lock at least every lockRetryMs
        await pause(r === 'blocked' ? GAP_RECHECK_MS : Math.min(pollIntervalMs, lockRetryMs));
      } catch (err) {
        m.publishErrors.inc();
        publisher.forgetTip();
        // A pass that moved the position before failing is not stuck: no growing backoff.
        if (pos !== passFrom) passFailures = 0;
        if (isChainBroken(err)) {
          // Another publisher got in between (a second bridge during a takeover): re-read at once
          // if this pass made progress (it cannot spin without progress: then it backs off).
          log.info(
            { err: { message: (err as Error).message }, position: pos.toString() },
            'another publisher got into the events stream; re-reading from the last position',
          );
          if (pos !== passFrom) continue;
        }
        const message = (err as Error).message;
        const stalledMs = Date.now() - lastReadAt;
        if (stalledMs > relayStallMs) {
          // Holding the lock while unable to relay would keep a healthy standby out for ever.
          log.error(
            { err: { message }, position: pos.toString(), stalledMs },
            'the relay has failed for longer than its bound; stepping down',
          );
          lockFailed(`relay failed for ${stalledMs} ms: ${message}`);
          return 'stalled';
        }
        const wait = backoffDelay(PASS_BACKOFF, passFailures++);
        log.warn(
          { err: { message }, position: pos.toString(), retryInMs: Math.round(wait) },
          'relay pass failed; retrying from the last position',
        );
        await backoffWait(wait);
      }
    }
    // A clean stop persists what was relayed: the next bridge re-reads nothing (a failure to do so
    // only means it re-reads a little and passes over what the stream holds).
    await persistPosition(true).catch((err: unknown) => {
      log.warn({ err: { message: (err as Error).message }, position: pos.toString() }, 'could not persist the position at stop');
    });
    return 'stopped';
  }

  const loop = (async () => {
    while (!stopping) {
      const attempt = await lock.tryLock();
      if (attempt === 'busy') {
        lockFailures = 0;
        await backoffWait(lockRetryMs);
        continue;
      }
      if (attempt === 'taken') {
        const ended = await runActive().catch((err: unknown) => {
          const message = (err as Error).message;
          log.error({ err: { message } }, 'the relay failed at takeover; released the lock, retrying with backoff');
          lockFailed(`takeover failed: ${message}`);
          return 'failed' as const;
        });
        // Lost the lock (its connection ended): try again at once; the attempt tells if PostgreSQL is there.
        if (ended === 'lost' || ended === 'stopped') continue;
      } else {
        lockFailed('cannot reach PostgreSQL for the advisory lock');
      }
      const wait = backoffDelay(lockBackoff, lockFailures - 1);
      log.debug({ retryInMs: Math.round(wait), failures: lockFailures }, 'waiting before the next lock attempt');
      await backoffWait(wait);
    }
  })().catch((err: unknown) => {
    // Nothing above throws; if something does, the process must not live on without a relay.
    log.fatal({ err }, 'bridge loop crashed');
    process.exit(1);
  });

  log.info({ natsPrefix: names.prefix, batchSize, pollIntervalMs }, 'bridge started as standby; waiting for the lock');
  return {
    role: () => role,
    position: () => pos.toString(),
    health,
    async stop() {
      stopping = true;
      wake('stop');
      for (const w of [...stopWaiters]) w();
      await loop;
      role = 'stopped';
      // Ending the lock connection releases the advisory lock: a standby takes over at once.
      await lock.release();
      log.info({ position: pos.toString() }, 'bridge stopped');
    },
  };
}

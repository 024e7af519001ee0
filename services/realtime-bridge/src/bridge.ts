/**
 * startBridge: relays the change journal (sql/0002) onto JetStream `<P>_EVENTS`, in journal order,
 * one event per journal row, `Nats-Msg-Id` = journal id. The argument for how is docs/realtime.md;
 * this file is the loop that joins its parts: a standby waits for the lock (leader.ts); the
 * active one reads (journal-reader.ts), publishes (publisher.ts), persists its position, sends
 * heartbeats, runs retention (retention.ts), and re-checks the lock between passes.
 */
import type postgres from 'postgres';
import { natsNames } from '@hatch/contracts';
import { ensureBridgePosition, markBridgePosition, type Db } from '@hatch/db';
import type { Logger } from '@hatch/log';
import { withTimeout } from '@hatch/async';
import { type Bus } from '@hatch/bus';
import type { Registry } from 'prom-client';
import { createJournalReader, GAP_RECHECK_MS, HORIZON_QUERY_TIMEOUT_MS } from './journal-reader.js';
import { createLeaderLock, LOCK_CHECK_TIMEOUT_MS } from './leader.js';
import { createBridgeMetrics } from './metrics.js';
import { createChainedPublisher, HEARTBEAT_TIMEOUT_MS, isChainBroken, PUBLISH_TIMEOUT_MS } from './publisher.js';
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
}

export interface RunningBridge {
  stop(): Promise<void>;
  role(): BridgeRole;
  /** last relayed journal id (as a string) */
  position(): string;
}

/** A failed pass waits this long at most before the next (doubling from 100 ms). */
export const MAX_BACKOFF_MS = 5000;
const LISTEN_TIMEOUT_MS = 5000;

/**
 * The longest an active bridge goes on as active once its lock backend is gone (PostgreSQL down,
 * or the backend ended), from its settings and the pool's bounds; every wait on the way is
 * bounded (docs/realtime.md#how-soon-a-lost-lock-is-noticed): the lock check falls due
 * (lockRetryMs); the round under way first re-issues LISTEN, then its pass ends at the first
 * PostgreSQL operation that fails (a pool acquire + query, or a horizon query), after the
 * publishes in flight and a heartbeat settled; the failed pass backs off; then the check itself.
 */
export function stepDownBoundMs(o: { lockRetryMs: number; pool: { acquireTimeoutMs: number; queryTimeoutMs: number } }): number {
  const failingDbOperation = Math.max(o.pool.acquireTimeoutMs + o.pool.queryTimeoutMs, HORIZON_QUERY_TIMEOUT_MS);
  const pass = PUBLISH_TIMEOUT_MS + HEARTBEAT_TIMEOUT_MS + failingDbOperation;
  return o.lockRetryMs + LISTEN_TIMEOUT_MS + pass + MAX_BACKOFF_MS + LOCK_CHECK_TIMEOUT_MS;
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
  const m = createBridgeMetrics(deps.registry);
  const lock = createLeaderLock(() => deps.openConnection('lock'), log);
  const reader = createJournalReader({ db: deps.db, log, metrics: m }, { batchSize });
  const publisher = createChainedPublisher({ bus: deps.bus, log, metrics: m }, names);

  let role: BridgeRole = 'standby';
  let stopping = false;
  let pos = 0n;
  let wakeReason = 'poll';
  let wakeUp: (() => void) | undefined;
  // a wake-up that arrives while a pass runs is kept, so the next pause returns at once
  let pendingWake = false;
  let listenConn: postgres.Sql | undefined;
  let listening = false;

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
    if (rows.length === 0 && verdict === 'idle') return 'idle';
    const before = pos;
    let published: number;
    try {
      published = await publisher.publish(rows, {
        keepGoing: () => !stopping && role === 'active',
        onSettled: (row) => {
          pos = BigInt(row.id);
        },
      });
    } finally {
      if (pos !== before) {
        m.position.set(Number(pos));
        await markBridgePosition(deps.db.db, name, pos.toString());
      }
    }
    if (published > 0) m.catchups.inc({ reason: wakeReason });
    return verdict;
  }

  async function runActive(): Promise<void> {
    role = 'active';
    m.active.set(1);
    m.takeovers.inc();
    pos = BigInt(await ensureBridgePosition(deps.db.db, name));
    reader.reset();
    publisher.forgetTip();
    m.position.set(Number(pos));
    log.info({ position: pos.toString() }, 'became the active bridge');
    wakeReason = 'takeover';
    let lastLockCheck = Date.now();
    let lastHeartbeat = 0;
    let lastRetention = 0;
    let backoff = 100;
    while (!stopping) {
      const now = Date.now();
      if (now - lastLockCheck >= lockRetryMs) {
        lastLockCheck = now;
        if (!(await lock.held())) {
          log.warn('lost the advisory lock connection; stepping down');
          break;
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
          await deleteRelayedJournal(deps.db, m, { retentionMs, relayedUpTo: pos, batch: retentionBatch, stopping: () => stopping });
        }
        backoff = 100;
        if (r === 'more') continue;
        wakeReason = 'poll';
        // idle: wake on NOTIFY, else poll, and re-check the lock at least every lockRetryMs
        await pause(r === 'blocked' ? GAP_RECHECK_MS : Math.min(pollIntervalMs, lockRetryMs));
      } catch (err) {
        m.publishErrors.inc();
        publisher.forgetTip();
        // A pass that moved the position before failing is not stuck: no growing backoff.
        if (pos !== passFrom) backoff = 100;
        if (isChainBroken(err)) {
          // Another publisher got in between (a second bridge during a takeover): re-read at once
          // if this pass made progress (it cannot spin without progress: then it backs off).
          log.info({ err: { message: (err as Error).message }, position: pos.toString() }, 'another publisher got into the events stream; re-reading from the last position');
          if (pos !== passFrom) continue;
        } else {
          log.warn({ err: { message: (err as Error).message }, position: pos.toString(), retryInMs: backoff }, 'relay pass failed; retrying from the last position');
        }
        await pause(backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
    role = stopping ? 'stopped' : 'standby';
    m.active.set(0);
    listening = false;
    const lc = listenConn;
    listenConn = undefined;
    await lc?.end({ timeout: 1 }).catch(() => {});
    await lock.release();
  }

  const loop = (async () => {
    while (!stopping) {
      if (await lock.tryLock()) {
        await runActive();
      } else {
        await pause(lockRetryMs);
      }
    }
  })().catch((err: unknown) => {
    log.fatal({ err }, 'bridge loop crashed');
    process.exitCode = 1;
  });

  log.info({ natsPrefix: names.prefix, batchSize, pollIntervalMs }, 'bridge started as standby; waiting for the lock');
  return {
    role: () => role,
    position: () => pos.toString(),
    async stop() {
      stopping = true;
      wake('stop');
      await loop;
      role = 'stopped';
      // Ending the lock connection releases the advisory lock: a standby takes over at once.
      await lock.release();
      log.info({ position: pos.toString() }, 'bridge stopped');
    },
  };
}

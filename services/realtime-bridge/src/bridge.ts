/**
 * startBridge: relays the change journal (sql/0002) onto JetStream `<P>_EVENTS`, in journal order,
 * one event per journal row, `Nats-Msg-Id` = journal id.
 *
 * - Exactly one active replica: a PostgreSQL advisory lock held on a dedicated connection. A
 *   standby retries the lock every `lockRetryMs`; when the active process dies (kill -9) its
 *   backend ends and the lock is free at once. The active one re-checks, every `lockRetryMs`, that
 *   the connection holding the lock is still the same backend (postgres.js reconnects silently,
 *   and a new backend does not hold the lock): if not, it stops relaying and becomes a standby.
 * - Wake-ups: LISTEN hatch_changes on a dedicated connection (re-issued after every reconnect,
 *   each followed by a catch-up), plus a poll every `pollIntervalMs` as a safety net. NOTIFY
 *   carries nothing: the journal is the transport, read after the persisted position.
 * - Publishing is sequential, each publish awaited: a pipelined batch whose middle publish
 *   failed while a later one was stored would put the stream out of order on retry. A publish
 *   repeated after a crash or failover (position not yet persisted) is dropped by JetStream's
 *   duplicate window (2 min), which is far longer than a takeover.
 *
 * THE OUT-OF-ORDER COMMIT TRAP (design rule 3, reliability.md §2.4, test T6). Journal ids come
 * from a sequence, taken before commit: transaction A takes id N, B takes N+1 and commits first.
 * A reader that relays N+1 and moves its cursor past N skips N for ever. Method: the GAP HORIZON.
 * Reading after position P, the first row must be P+1. If the next visible id is larger, the ids
 * in between (the gap) belong either to transactions still running or to ones that rolled back
 * (or to nothing at all). We stop there (never relay past a gap), and take a horizon H: a fresh
 * xid from pg_current_xact_id(). Every transaction that took a gap id had its xid before it took
 * the id (the journal trigger runs after the row write and calls pg_current_xact_id() first),
 * took the id before the higher visible id was taken, hence before we read it and before H was
 * assigned: its xid is < H (xids are assigned in increasing order). When a later snapshot has
 * pg_snapshot_xmin() >= H, no transaction with an xid below H is running any more (xmin >= H
 * implies xmax >= H, so each of them would have been counted by xmin), so each gap id is now
 * either committed (visible to any read that starts after this check) or never will be. We then
 * re-read: gap ids now visible are relayed in order; ids still missing in that re-read are
 * skipped for good. (The snapshot's xmax would not do as H: it is latestCompletedXid + 1, and a
 * transaction that took its xid before a later-completing one can sit above it and be ignored.)
 * Cost: while a gap is open, relaying waits for the transaction that holds it (usually
 * milliseconds; a long write transaction delays realtime events, never loses them), and a gap
 * check takes one xid. A gap that a commit fills needs no horizon (the re-read sees it); only an
 * id that never commits (rollback) waits for the horizon, i.e. for every write transaction in
 * the cluster older than H, so a long-running unrelated writer can delay events behind a
 * rolled-back id (hatch_bridge_gap_waits_total counts these waits; a warning names one > 10 s).
 */
import type postgres from 'postgres';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { BusChangeEvent, BusHeartbeat, encode, natsNames } from '@hatch/contracts';
import { deleteOldJournalRows, findBridgePosition, findJournalAfter, journalRowToEvent, markBridgePosition, type Db, type JournalRow } from '@hatch/db';
import type { Logger } from '@hatch/log';
import { withTimeout, type Bus } from '@hatch/runtime';

export const NOTIFY_CHANNEL = 'hatch_changes';
/** pg advisory lock key of the bridge election ("hatch_rb"); advisory locks are per database. */
export const BRIDGE_LOCK_KEY = '7521962307316851298';

export type BridgeRole = 'active' | 'standby' | 'stopped';

export interface BridgeDeps {
  db: Db;
  bus: Bus;
  registry: Registry;
  log: Logger;
  /** opens a dedicated single connection (the composition root owns the URL) */
  openConnection(purpose: 'lock' | 'listen', hooks?: { onnotify?: () => void; onclose?: () => void }): postgres.Sql;
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

interface Gap {
  /** highest id of the gap, as first seen */
  upTo: bigint;
  horizon: bigint;
  cleared: boolean;
  since: number;
  warned: boolean;
}

const GAP_RECHECK_MS = 25;
const GAP_WARN_MS = 10_000;
const MAX_BACKOFF_MS = 5000;
const RETENTION_MAX_BATCHES_PER_RUN = 20;

function createMetrics(registry: Registry) {
  return {
    active: new Gauge({ name: 'hatch_bridge_active', help: '1 while this replica holds the lock and relays', registers: [registry] }),
    position: new Gauge({ name: 'hatch_bridge_position', help: 'last relayed journal id', registers: [registry] }),
    relayed: new Counter({ name: 'hatch_bridge_events_relayed_total', help: 'journal rows published to NATS', labelNames: ['table'], registers: [registry] }),
    lag: new Histogram({
      name: 'hatch_bridge_relay_lag_seconds',
      help: 'change time to NATS publish ack',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    catchups: new Counter({ name: 'hatch_bridge_catchups_total', help: 'relay passes that published rows, by what woke them', labelNames: ['reason'], registers: [registry] }),
    gapWaits: new Counter({ name: 'hatch_bridge_gap_waits_total', help: 'gaps in journal ids waited on (uncommitted lower ids)', registers: [registry] }),
    gapSkipped: new Counter({ name: 'hatch_bridge_gap_ids_skipped_total', help: 'journal ids proven never to commit (rolled back)', registers: [registry] }),
    publishErrors: new Counter({ name: 'hatch_bridge_publish_errors_total', help: 'failed relay passes (NATS or PostgreSQL)', registers: [registry] }),
    takeovers: new Counter({ name: 'hatch_bridge_takeovers_total', help: 'times this replica became active', registers: [registry] }),
    deleted: new Counter({ name: 'hatch_bridge_journal_deleted_total', help: 'journal rows deleted by retention', registers: [registry] }),
  };
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
  const m = createMetrics(deps.registry);
  const db = deps.db.db;

  let role: BridgeRole = 'standby';
  let stopping = false;
  let pos = 0n;
  let gap: Gap | undefined;
  let wakeReason = 'poll';
  let wakeUp: (() => void) | undefined;
  // a wake-up that arrives while a pass runs is kept, so the next pause returns at once
  let pendingWake = false;
  let lockConn: postgres.Sql | undefined;
  let lockPid: number | undefined;
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

  async function dropLockConn(): Promise<void> {
    const c = lockConn;
    lockConn = undefined;
    lockPid = undefined;
    await c?.end({ timeout: 1 }).catch(() => {});
  }

  async function tryLock(): Promise<boolean> {
    lockConn ??= deps.openConnection('lock');
    try {
      const [r] = await withTimeout(
        lockConn<{ ok: boolean; pid: number }[]>`SELECT pg_try_advisory_lock(${BRIDGE_LOCK_KEY}::bigint) AS ok, pg_backend_pid() AS pid`,
        5000,
        'lock query timed out',
      );
      if (r?.ok) lockPid = r.pid;
      return r?.ok === true;
    } catch (err) {
      log.warn({ err: { message: (err as Error).message } }, 'advisory lock attempt failed');
      await dropLockConn();
      return false;
    }
  }

  /** Still the same backend, hence still the lock holder? */
  async function lockHeld(): Promise<boolean> {
    if (!lockConn || lockPid === undefined) return false;
    try {
      const [r] = await withTimeout(lockConn<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`, 3000, 'lock check timed out');
      return r?.pid === lockPid;
    } catch (err) {
      log.warn({ err: { message: (err as Error).message } }, 'lock connection check failed');
      return false;
    }
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
      await withTimeout(listenConn`LISTEN hatch_changes`, 5000, 'LISTEN timed out');
      listening = true;
      log.info('listening for journal wake-ups');
      wakeReason = 'listen';
    } catch (err) {
      log.warn({ err: { message: (err as Error).message } }, 'LISTEN failed; polling meanwhile');
    }
  }

  async function takeHorizon(): Promise<bigint> {
    const [r] = await deps.db.sql<{ x: string }[]>`SELECT pg_current_xact_id()::text AS x`;
    return BigInt(r?.x ?? '0');
  }

  async function horizonPassed(h: bigint): Promise<boolean> {
    const [r] = await deps.db.sql<{ x: string }[]>`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS x`;
    return BigInt(r?.x ?? '0') >= h;
  }

  async function publish(row: JournalRow): Promise<void> {
    let data: Uint8Array;
    const env = journalRowToEvent(row);
    try {
      data = encode(BusChangeEvent, env);
    } catch (err) {
      // Cannot happen with the schema's enums; a row that cannot be encoded is logged and
      // passed over rather than blocking every later change.
      log.error({ err, journalId: row.id }, 'journal row does not match the event contract; not relayed');
      return;
    }
    await deps.bus.js.publish(names.subjects.eventFor(row.table_name as 'messages' | 'emails'), data, { msgID: env.id, timeout: 5000 });
    m.relayed.inc({ table: row.table_name });
    m.lag.observe(Math.max(0, (Date.now() - new Date(row.changed_at).getTime()) / 1000));
  }

  /** One read + publish pass. */
  async function relayStep(): Promise<'idle' | 'more' | 'blocked'> {
    const rows = await findJournalAfter(db, pos.toString(), batchSize);
    if (rows.length === 0) return 'idle';
    const out: JournalRow[] = [];
    let expected = pos + 1n;
    let verdict: 'more' | 'blocked' | undefined;
    for (const row of rows) {
      const id = BigInt(row.id);
      if (id !== expected) {
        if (gap?.cleared && id - 1n <= gap.upTo) {
          // Proven: ids expected..id-1 never committed (see the header comment).
          m.gapSkipped.inc(Number(id - expected));
          log.debug({ from: expected.toString(), to: (id - 1n).toString() }, 'skipping journal ids that never committed');
        } else {
          if (!gap || id - 1n > gap.upTo) {
            gap = { upTo: id - 1n, horizon: await takeHorizon(), cleared: false, since: Date.now(), warned: false };
            m.gapWaits.inc();
          }
          if (await horizonPassed(gap.horizon)) {
            gap.cleared = true; // the next read (a newer snapshot) decides
            verdict = 'more';
          } else {
            verdict = 'blocked';
            if (!gap.warned && Date.now() - gap.since > GAP_WARN_MS) {
              gap.warned = true;
              log.warn({ waitingFor: expected.toString(), horizon: gap.horizon.toString() }, 'a long transaction holds a journal id; relay waits for it');
            }
          }
          break;
        }
      }
      out.push(row);
      expected = id + 1n;
      if (gap && expected > gap.upTo) gap = undefined;
    }
    let published = 0;
    try {
      for (const row of out) {
        if (stopping || role !== 'active') break;
        await publish(row);
        pos = BigInt(row.id);
        published++;
      }
    } finally {
      if (published > 0) {
        m.position.set(Number(pos));
        await markBridgePosition(db, name, pos.toString());
      }
    }
    if (published > 0) m.catchups.inc({ reason: wakeReason });
    return verdict ?? (rows.length === batchSize ? 'more' : 'idle');
  }

  async function heartbeat(): Promise<void> {
    const hb: BusHeartbeat = { type: 'heartbeat', position: pos.toString(), at: new Date().toISOString() };
    await deps.bus.js.publish(names.subjects.eventFor('heartbeat'), encode(BusHeartbeat, hb), { timeout: 3000 });
  }

  async function retention(): Promise<void> {
    for (let i = 0; i < RETENTION_MAX_BATCHES_PER_RUN && !stopping; i++) {
      const n = await deleteOldJournalRows(db, { olderThanMs: retentionMs, relayedUpTo: pos.toString(), limit: retentionBatch });
      m.deleted.inc(n);
      if (n < retentionBatch) return;
    }
  }

  async function runActive(): Promise<void> {
    role = 'active';
    m.active.set(1);
    m.takeovers.inc();
    pos = BigInt(await findBridgePosition(db, name));
    gap = undefined;
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
        if (!(await lockHeld())) {
          log.warn('lost the advisory lock connection; stepping down');
          break;
        }
      }
      await ensureListening();
      pendingWake = false;
      try {
        const r = await relayStep();
        if (Date.now() - lastHeartbeat >= heartbeatMs) {
          lastHeartbeat = Date.now();
          await heartbeat();
        }
        if (Date.now() - lastRetention >= retentionIntervalMs) {
          lastRetention = Date.now();
          await retention();
        }
        backoff = 100;
        if (r === 'more') continue;
        wakeReason = 'poll';
        // idle: wake on NOTIFY, else poll, and re-check the lock at least every lockRetryMs
        await pause(r === 'blocked' ? GAP_RECHECK_MS : Math.min(pollIntervalMs, lockRetryMs));
      } catch (err) {
        m.publishErrors.inc();
        log.warn({ err: { message: (err as Error).message }, position: pos.toString(), retryInMs: backoff }, 'relay pass failed; retrying from the last position');
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
    await dropLockConn();
  }

  const loop = (async () => {
    while (!stopping) {
      if (await tryLock()) {
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
      await dropLockConn();
      log.info({ position: pos.toString() }, 'bridge stopped');
    },
  };
}

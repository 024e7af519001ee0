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
 * - Publishing is PIPELINED and CHAINED (see below); a publish repeated after a crash or failover
 *   (position not yet persisted) is dropped by JetStream's duplicate window (2 min), which is far
 *   longer than a takeover.
 *
 * PIPELINED PUBLISHING WITHOUT REORDERING. Awaiting each publish caps the relay at one NATS round
 * trip per event. A plain pipelined batch is unsafe: if publish i fails and i+1 is stored, the
 * retry of i lands after i+1. So every publish but the first of a chain carries an expectation
 * that the server checks before storing it, and that only holds if its predecessor was stored
 * immediately before it: `Nats-Expected-Last-Msg-Id` = the previous row's msgID (the journal id).
 * Row k is then stored only directly after row k-1; once one publish fails, every later one in
 * flight fails too (its predecessor is not the stream's last message), so nothing can overtake
 * the failed row. At most PUBLISH_WINDOW publishes are in flight; acks are consumed in order,
 * `pos` advances over the contiguous acked prefix only and is persisted as before; on the first
 * failure the bridge stops issuing, waits for what is in flight to settle, forgets the chain
 * tip and takes the ordinary error/backoff path, re-reading from `pos`.
 *   Why not `expect.lastSequence = lastSeq + k` (a count of sequences): a foreign message (a
 * second bridge during a takeover, any other publisher on `<P>.events.>`) takes the sequence
 * the failed row would have had, so the NEXT row's expected sequence exists and it is stored
 * past the hole: verified on nats-server 2.9.10 (rows p1, p2, p3, p4 pipelined with an intruder
 * after p1: p2 fails "wrong last sequence", p3 and p4 are stored). The msgID chain names the
 * predecessor, so an intruder breaks it for every later row (test/jetstream-expectations.test.ts).
 *   The chain tip (`tip`: the msgID this bridge last had acked) is unknown after a takeover and
 * after any failure; then the next publish is sent WITHOUT expectation and awaited alone. That
 * is safe only as the first publish of a pass, when every row up to `pos` is acked, which is the
 * only place it happens. Heartbeats carry a unique msgID (`hb-<uuid>`) and are awaited between
 * passes, so their ack moves the tip and the next pass pipelines from its first row. (A message
 * without msgID makes the server's last msgID empty: it would break the chain.)
 *   Duplicates: nats-server 2.9.10 checks the duplicate window BEFORE any expectation (a repeated
 * msgID with a wrong expected last msgID or sequence is answered `duplicate: true` with the
 * original's seq), and a duplicate does not change the stream's last msgID. A duplicate ack
 * counts as relayed (the row is in the stream, as before), and its msgID becomes the tip only as
 * a guess: the next row's expectation checks it, so a re-relay after a takeover whose rows are
 * all duplicates pipelines, and the first new row is stored only if its predecessor is the
 * stream's last. A failed expectation (`wrong last msg ID`, code 10070) is expected while two
 * bridges overlap and is logged at info, and a pass that moved the position before it broke
 * re-reads at once (no progress: the usual growing backoff); every other failure at warn, as
 * before. Verified only on a single nats-server 2.9.10; on a replicated (R3) stream the leader
 * checks the expectation when it applies each message, in proposal order (untested here).
 *
 * THE OUT-OF-ORDER COMMIT TRAP (docs/architecture.md, rule 3; test T6). Journal ids come
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
import { randomUUID } from 'node:crypto';
import type postgres from 'postgres';
import { JetStreamApiError, type PubAck } from '@nats-io/jetstream';
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
/** Publishes in flight at most (docs/architecture.md, rule 4); each holds one encoded event. */
const PUBLISH_WINDOW = 256;
const PUBLISH_TIMEOUT_MS = 5000;
/** JetStream API error codes of a failed publish expectation (another publisher got in between). */
const WRONG_LAST_MSG_ID = 10070;
const WRONG_LAST_SEQUENCE = 10071;

/** A failed expectation: expected while two bridges overlap (a takeover), not a fault. */
export function isChainBroken(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === WRONG_LAST_MSG_ID || err.code === WRONG_LAST_SEQUENCE);
}

type PublishOutcome = { ack: PubAck } | { err: unknown } | { skipped: true };

interface InFlight {
  row: JournalRow;
  outcome: Promise<PublishOutcome>;
}

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
  // msgID of the message this bridge last had acked in the events stream (see the header comment);
  // undefined = unknown: the next publish goes without expectation, awaited alone.
  let tip: string | undefined;

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
    // raw postgres.js queries are not under @hatch/db's query bound: bounded here
    const [r] = await withTimeout(deps.db.sql<{ x: string }[]>`SELECT pg_current_xact_id()::text AS x`, 5000, 'horizon query timed out');
    return BigInt(r?.x ?? '0');
  }

  async function horizonPassed(h: bigint): Promise<boolean> {
    const [r] = await withTimeout(deps.db.sql<{ x: string }[]>`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS x`, 5000, 'horizon check timed out');
    return BigInt(r?.x ?? '0') >= h;
  }

  /** Sends one row, chained to `tip` when known; the outcome never rejects. */
  function send(row: JournalRow): Promise<PublishOutcome> {
    let data: Uint8Array;
    const env = journalRowToEvent(row);
    try {
      data = encode(BusChangeEvent, env);
    } catch (err) {
      // Cannot happen with the schema's enums; a row that cannot be encoded is logged and
      // passed over rather than blocking every later change (the chain tip stays as it is).
      log.error({ err, journalId: row.id }, 'journal row does not match the event contract; not relayed');
      return Promise.resolve({ skipped: true });
    }
    const expectLast = tip;
    tip = env.id;
    return deps.bus.js
      .publish(names.subjects.eventFor(row.table_name as 'messages' | 'emails'), data, {
        msgID: env.id,
        timeout: PUBLISH_TIMEOUT_MS,
        ...(expectLast !== undefined ? { expect: { lastMsgID: expectLast } } : {}),
      })
      .then(
        (ack) => ({ ack }),
        (err: unknown) => ({ err }),
      );
  }

  /**
   * Publishes `rows` (consecutive journal rows after `pos`) pipelined and chained, at most
   * PUBLISH_WINDOW in flight; advances `pos` over the contiguous acked prefix. Throws the first
   * failure after everything in flight has settled. Returns how many rows it relayed.
   */
  async function publishRows(rows: JournalRow[]): Promise<number> {
    const inflight: InFlight[] = [];
    let relayed = 0;
    let failure: { err: unknown } | undefined;
    const settleHead = async () => {
      const f = inflight.shift() as InFlight;
      const o = await f.outcome;
      if (failure) return; // behind a failure nothing counts: it is re-read and re-published
      if ('err' in o) {
        failure = o;
        tip = undefined;
        return;
      }
      pos = BigInt(f.row.id);
      if ('ack' in o) {
        relayed++;
        m.relayed.inc({ table: f.row.table_name });
        m.lag.observe(Math.max(0, (Date.now() - new Date(f.row.changed_at).getTime()) / 1000));
      }
    };
    for (const row of rows) {
      if (stopping || role !== 'active' || failure) break;
      if (tip === undefined) {
        // Unchained: safe only with nothing in flight before it, i.e. every row up to pos acked.
        while (inflight.length > 0) await settleHead();
        if (failure) break;
        inflight.push({ row, outcome: send(row) });
        await settleHead();
        continue;
      }
      inflight.push({ row, outcome: send(row) });
      if (inflight.length >= PUBLISH_WINDOW) await settleHead();
    }
    while (inflight.length > 0) await settleHead();
    if (failure) throw failure.err;
    return relayed;
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
    const before = pos;
    let published: number;
    try {
      published = await publishRows(out);
    } finally {
      if (pos !== before) {
        m.position.set(Number(pos));
        await markBridgePosition(db, name, pos.toString());
      }
    }
    if (published > 0) m.catchups.inc({ reason: wakeReason });
    return verdict ?? (rows.length === batchSize ? 'more' : 'idle');
  }

  async function heartbeat(): Promise<void> {
    const hb: BusHeartbeat = { type: 'heartbeat', position: pos.toString(), at: new Date().toISOString() };
    // A msgID of its own keeps the chain (a message without one empties the stream's last msgID).
    const msgID = `hb-${randomUUID()}`;
    tip = undefined;
    await deps.bus.js.publish(names.subjects.eventFor('heartbeat'), encode(BusHeartbeat, hb), { msgID, timeout: 3000 });
    tip = msgID;
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
    tip = undefined;
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
      const passFrom = pos;
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
        tip = undefined;
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

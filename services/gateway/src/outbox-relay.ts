/**
 * The outbox relay (docs/architecture.md, rule 1). A message's outbox row is committed with the message; right
 * after the commit the request hands the row here (`kick`) and returns 202 without waiting for
 * NATS. The relay publishes it to JetStream with Nats-Msg-Id = the row's dedupe id and deletes
 * the row once JetStream acknowledged it. Rows that never made it (NATS down, gateway killed,
 * queue full) are found by the sweeper, which every replica runs: it locks due rows with
 * FOR UPDATE SKIP LOCKED so replicas share the work, re-publishes them (JetStream drops a
 * duplicate inside its window; past it the worker's claim keeps it to one send) and backs off
 * rows that keep failing.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { backoffDelay, encode, EmailJob, SmsJob, type Backoff, type NatsNames } from '@hatch/contracts';
import { claimDueOutbox, deferOutbox, deleteOutbox, requeueStalled, type Db, type OutboxJob } from '@hatch/db';
import type { Logger } from '@hatch/log';
import { withTimeout } from '@hatch/async';
import type { Bus } from '@hatch/bus';

/** A row the sweep could not publish waits 0.5 s, 1 s, … 30 s before the next try. */
const REPUBLISH_BACKOFF: Backoff = { baseMs: 500, maxMs: 30_000 };
/** Failed sweeps in a row (PostgreSQL unreachable) stretch the sweep interval, doubling to this. */
export const MAX_SWEEP_BACKOFF_MS = 30_000;

export interface OutboxRelayOptions {
  sweepIntervalMs?: number;
  /** a row younger than this is left to the immediate path */
  graceMs?: number;
  batchSize?: number;
  /** rows waiting for the immediate path; past it they wait for the sweeper (bounded memory) */
  maxPending?: number;
  publishTimeoutMs?: number;
  /** an SMS / email with no progress for this long and no job gets a new one (requeueStalled) */
  stalledAfterMs?: number;
  /** how often to look for them */
  stalledCheckMs?: number;
  /** stop() waits this long for a publish or sweep in progress (rows left are swept later) */
  stopTimeoutMs?: number;
}

export interface OutboxRelay {
  /** hand over rows just committed */
  kick(rows: OutboxJob[]): void;
  /** one sweep now (tests; also what the timer runs) */
  sweepOnce(): Promise<number>;
  /** one look for stalled SMS / emails now (tests; also what its timer runs): how many re-queued */
  requeueStalledOnce(): Promise<number>;
  stop(): Promise<void>;
}

export interface OutboxRelayDeps {
  db: Db;
  bus: Bus;
  names: NatsNames;
  log: Logger;
  registry: Registry;
}

export function jobFor(row: Pick<OutboxJob, 'kind' | 'entity_id'>, names: NatsNames): { subject: string; payload: Uint8Array } {
  const enqueued_at = new Date().toISOString();
  if (row.kind === 'sms')
    return { subject: names.subjects.smsJob, payload: encode(SmsJob, { v: 1, message_id: row.entity_id, enqueued_at }) };
  return { subject: names.subjects.emailJob, payload: encode(EmailJob, { v: 1, email_id: row.entity_id, enqueued_at }) };
}

export function startOutboxRelay(deps: OutboxRelayDeps, opts: OutboxRelayOptions = {}): OutboxRelay {
  const log = deps.log.child({ component: 'outbox' });
  const sweepIntervalMs = opts.sweepIntervalMs ?? 1000;
  const graceMs = opts.graceMs ?? 5000;
  const batchSize = opts.batchSize ?? 100;
  const maxPending = opts.maxPending ?? 10_000;
  const publishTimeoutMs = opts.publishTimeoutMs ?? 3000;
  const stalledAfterMs = opts.stalledAfterMs ?? 10 * 60_000;
  const stalledCheckMs = opts.stalledCheckMs ?? 60_000;

  const published = new Counter({
    name: 'hatch_outbox_published_total',
    help: 'outbox rows acknowledged by JetStream',
    labelNames: ['path'],
    registers: [deps.registry],
  });
  const failures = new Counter({
    name: 'hatch_outbox_publish_failures_total',
    help: 'outbox publishes that failed (left for the sweeper)',
    registers: [deps.registry],
  });
  const requeued = new Counter({
    name: 'hatch_outbox_requeued_stalled_total',
    help: 'SMS / emails found stalled with no job and queued again',
    registers: [deps.registry],
  });
  const pendingGauge = new Gauge({
    name: 'hatch_outbox_pending',
    help: 'rows waiting for the immediate publish path',
    registers: [deps.registry],
  });

  const pending: OutboxJob[] = [];
  let draining: Promise<void> | undefined;
  let sweeping: Promise<number> | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  /** sweeps that failed in a row: the next one waits longer (backoffDelay) */
  let sweepFailures = 0;

  async function publish(row: OutboxJob): Promise<boolean> {
    const { subject, payload } = jobFor(row, deps.names);
    try {
      const ack = await deps.bus.js.publish(subject, payload, { msgID: row.dedupe_id, timeout: publishTimeoutMs, retries: 0 });
      if (ack.duplicate) log.debug({ dedupeId: row.dedupe_id }, 'duplicate publish dropped by JetStream');
      return true;
    } catch (err) {
      failures.inc();
      log.warn({ err: { message: (err as Error).message }, dedupeId: row.dedupe_id }, 'outbox publish failed; the sweeper will retry');
      return false;
    }
  }

  async function drain(): Promise<void> {
    while (pending.length > 0 && !stopped) {
      const batch = pending.splice(0, batchSize);
      pendingGauge.set(pending.length);
      const results = await Promise.all(batch.map((r) => publish(r)));
      const acked = batch.filter((_, i) => results[i]).map((r) => r.id);
      if (acked.length) {
        try {
          await deleteOutbox(deps.db.db, acked);
          published.inc({ path: 'immediate' }, acked.length);
        } catch (err) {
          // rows stay; the sweeper re-publishes them and JetStream drops the duplicates
          log.warn({ err: { message: (err as Error).message } }, 'could not delete published outbox rows');
        }
      }
    }
  }

  function kick(rows: OutboxJob[]): void {
    if (stopped) return;
    const room = maxPending - pending.length;
    if (room < rows.length) log.warn({ dropped: rows.length - Math.max(room, 0) }, 'outbox queue full; the sweeper will publish the rest');
    pending.push(...rows.slice(0, Math.max(room, 0)));
    pendingGauge.set(pending.length);
    draining ??= drain().finally(() => {
      draining = undefined;
      if (pending.length && !stopped) kick([]);
    });
  }

  async function sweep(): Promise<number> {
    return deps.db.db.transaction().execute(async (tx) => {
      const rows = await claimDueOutbox(tx, { limit: batchSize, olderThanMs: graceMs });
      if (rows.length === 0) return 0;
      const results = await Promise.all(rows.map((r) => publish(r)));
      const acked = rows.filter((_, i) => results[i]).map((r) => r.id);
      await deleteOutbox(tx, acked);
      for (const [i, r] of rows.entries()) {
        if (!results[i]) await deferOutbox(tx, r.id, backoffDelay(REPUBLISH_BACKOFF, r.publish_attempts), 'publish failed');
      }
      if (acked.length) {
        published.inc({ path: 'sweep' }, acked.length);
        log.info({ republished: acked.length, failed: rows.length - acked.length }, 'outbox sweep re-published rows');
      }
      return acked.length;
    });
  }

  function sweepOnce(): Promise<number> {
    sweeping ??= sweep()
      .then((n) => {
        sweepFailures = 0;
        return n;
      })
      .catch((err: unknown) => {
        sweepFailures++;
        log.warn({ err: { message: (err as Error).message }, failures: sweepFailures }, 'outbox sweep failed');
        return 0;
      })
      .finally(() => {
        sweeping = undefined;
      });
    return sweeping;
  }

  async function requeueStalledOnce(): Promise<number> {
    try {
      const rows = await requeueStalled(deps.db.db, { staleMs: stalledAfterMs, limit: batchSize });
      if (rows.length) {
        requeued.inc(rows.length);
        log.warn({ count: rows.length }, 'stalled SMS / emails with no job found: queued again');
        kick(rows);
      }
      return rows.length;
    } catch (err) {
      log.warn({ err: { message: (err as Error).message } }, 'stalled-job check failed');
      return 0;
    }
  }
  const stalledTimer = setInterval(() => void requeueStalledOnce(), stalledCheckMs);
  stalledTimer.unref();

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(
      () => {
        void sweepOnce().then(async (n) => {
          // a full batch means more are due: keep going without waiting a whole interval
          if (n >= batchSize && !stopped) await sweepOnce();
          schedule();
        });
      },
      sweepFailures === 0
        ? sweepIntervalMs
        : backoffDelay({ baseMs: sweepIntervalMs, maxMs: Math.max(sweepIntervalMs, MAX_SWEEP_BACKOFF_MS), jitter: 0.2 }, sweepFailures),
    );
    timer.unref();
  };
  schedule();

  return {
    kick,
    sweepOnce,
    requeueStalledOnce,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      clearInterval(stalledTimer);
      const settled = await withTimeout(Promise.allSettled([draining, sweeping]), opts.stopTimeoutMs ?? 5000, 'stop bound').then(
        () => true,
        () => false,
      );
      // Nothing is lost: unpublished rows stay in the outbox for any replica's sweeper.
      if (!settled) log.warn({ pending: pending.length }, 'outbox relay still busy at the stop bound; its rows are left to the sweeper');
    },
  };
}

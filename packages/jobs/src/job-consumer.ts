/**
 * The job-consumer machinery shared by sms-sender and email-sender (one mechanism, two
 * channels). A durable pull consumer with explicit acks; bounded concurrency; the handler
 * decides (`JobOutcome`), this loop maps the decision onto the bus:
 *   ack   → ack()                                   (done, or nothing left to do)
 *   retry → nak(delay)                              (JetStream redelivers after the delay)
 *   fail  → ack()                                   (a permanent outcome the handler recorded)
 *   dead  → copy to the dead-letter stream, term()  (poison, or attempts exhausted)
 * A job that does not decode is dead-lettered at once and never blocks the others. On the last
 * allowed delivery a `retry`, or an error the handler threw, becomes `exhausted` (the handler
 * records the failure) then dead.
 * The dead letter is copied BEFORE term(): under work-queue retention a termed message may be
 * gone before anyone reads it (docs/reliability.md#jetstream).
 */
import { AckPolicy, DeliverPolicy, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { headers as natsHeaders, nanos } from '@nats-io/transport-node';
import type { TSchema, Static } from 'typebox';
import { Counter, Gauge, type Registry } from 'prom-client';
import { backoffDelay, ContractError, decode, JOB_HEADERS, type Backoff } from '@hatch/contracts';
import type { Logger } from '@hatch/log';
import { withTimeout } from '@hatch/async';
import { isNotFound, type Bus } from '@hatch/bus';

/** Redelivery after an error the handler did not classify (database down, a bug): 2 s, 4 s, … 30 s. */
const HANDLER_ERROR_BACKOFF: Backoff = { baseMs: 1000, maxMs: 30_000 };

export type JobOutcome =
  | { kind: 'ack'; note?: string }
  | { kind: 'retry'; delayMs: number; reason: string }
  | { kind: 'fail'; code: string; reason: string }
  | { kind: 'dead'; code: string; reason: string };

export interface JobContext {
  /** 1 for the first delivery */
  deliveryCount: number;
  /** true on the last delivery the consumer allows */
  lastAttempt: boolean;
  /** tells JetStream the job is still being worked on (resets AckWait) */
  working(): void;
  log: Logger;
}

export interface JobConsumerOptions<S extends TSchema> {
  bus: Bus;
  log: Logger;
  registry: Registry;
  /** label for metrics and logs: sms, email */
  kind: 'sms' | 'email';
  stream: string;
  durable: string;
  subject: string;
  dlqSubject: string;
  schema: S;
  concurrency: number;
  ackWaitMs: number;
  maxDeliver: number;
  /**
   * stop() waits this long for jobs in flight (default 8 s, inside a worker's 9 s shutdown
   * bound); jobs still running then are left unacked and no longer kept alive, so JetStream
   * redelivers them after AckWait, and named in a warning.
   */
  drainTimeoutMs?: number;
  handle(job: Static<S>, ctx: JobContext): Promise<JobOutcome>;
  /** attempts exhausted on a retryable error: record the final failure (then the job is dead-lettered) */
  onExhausted(job: Static<S>, reason: string): Promise<void>;
}

export interface JobConsumer {
  stop(): Promise<void>;
  /** jobs being handled right now */
  inFlight(): number;
}

/** Creates the durable consumer, or updates it to this configuration. */
export async function ensureConsumer(
  bus: Bus,
  o: { stream: string; durable: string; subject: string; ackWaitMs: number; maxDeliver: number; maxAckPending: number },
): Promise<void> {
  const config = {
    durable_name: o.durable,
    filter_subject: o.subject,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(o.ackWaitMs),
    // The worker dead-letters on its own last attempt; the server's limit sits above it so a
    // job whose worker crashed on that attempt is still delivered once more to be recorded.
    max_deliver: o.maxDeliver + 2,
    max_ack_pending: o.maxAckPending,
    // as many copies as its stream (HATCH_STREAM_REPLICAS): a node lost keeps the ack state
    num_replicas: bus.replicas,
  };
  try {
    await bus.jsm.consumers.info(o.stream, o.durable);
    await bus.jsm.consumers.update(o.stream, o.durable, config);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await bus.jsm.consumers.add(o.stream, config);
  }
}

export async function startJobConsumer<S extends TSchema>(o: JobConsumerOptions<S>): Promise<JobConsumer> {
  const log = o.log.child({ component: `${o.kind}-jobs` });
  const outcomes = new Counter({
    name: `hatch_${o.kind}_jobs_total`,
    help: `${o.kind} jobs by outcome`,
    labelNames: ['outcome'],
    registers: [o.registry],
  });
  const inFlightGauge = new Gauge({
    name: `hatch_${o.kind}_jobs_in_flight`,
    help: `${o.kind} jobs being handled`,
    registers: [o.registry],
  });
  const consumerConfig = {
    stream: o.stream,
    durable: o.durable,
    subject: o.subject,
    ackWaitMs: o.ackWaitMs,
    maxDeliver: o.maxDeliver,
    maxAckPending: Math.max(o.concurrency * 4, 16),
  };
  await ensureConsumer(o.bus, consumerConfig);
  let consumer = await o.bus.js.consumers.get(o.stream, o.durable);

  let inFlight = 0;
  // what stop() names and lets go when a job outlives the drain bound
  const running = new Map<JsMsg, { since: number; heartbeat: NodeJS.Timeout }>();
  let stopped = false;
  const idle: Array<() => void> = [];
  const slotFreed: Array<() => void> = [];
  const release = () => {
    inFlight--;
    inFlightGauge.set(inFlight);
    slotFreed.shift()?.();
    if (inFlight === 0) while (idle.length) idle.shift()?.();
  };

  async function deadLetter(m: JsMsg, code: string, reason: string): Promise<boolean> {
    const h = natsHeaders();
    for (const [k, v] of m.headers ?? []) for (const x of v) h.append(k, x);
    h.set(JOB_HEADERS.deadReason, code);
    h.set(JOB_HEADERS.deadDetail, reason.slice(0, 500).replace(/[\r\n]+/g, ' '));
    h.set(JOB_HEADERS.originalSubject, m.subject);
    h.set(JOB_HEADERS.deliveries, String(m.info.deliveryCount));
    // Its own dedupe id: the copied one is the entity's, so a job re-queued (retry endpoint) and
    // dead-lettered again within JetStream's duplicate window would be dropped as a duplicate.
    // The job's stream sequence is unique per publish and the same if this very job is
    // dead-lettered twice (a crash between publish and term).
    const original = m.headers?.get(JOB_HEADERS.msgId);
    if (original) h.set(JOB_HEADERS.originalMsgId, original);
    h.set(JOB_HEADERS.msgId, `dlq:${m.info.stream}:${m.info.streamSequence}`);
    try {
      await o.bus.js.publish(o.dlqSubject, m.data, { headers: h, timeout: 5000 });
      // No reason argument: nats-server 2.9 does not parse `+TERM <reason>`, ignores it and
      // redelivers the job after AckWait (poison jobs looped until max_deliver, then stayed in
      // the work queue for good). The reason travels in the dead letter's headers instead.
      m.term();
      return true;
    } catch (err) {
      log.error({ err: { message: (err as Error).message }, seq: m.seq }, 'could not dead-letter a job; it will be redelivered');
      m.nak(5000);
      return false;
    }
  }

  async function process(m: JsMsg): Promise<void> {
    const deliveryCount = m.info.deliveryCount;
    let job: Static<S>;
    try {
      job = decode(o.schema, m.data);
    } catch (err) {
      const reason = err instanceof ContractError ? err.message : String(err);
      log.error({ seq: m.seq, reason }, 'poison job: dead-lettered without processing');
      if (await deadLetter(m, 'POISON', reason)) outcomes.inc({ outcome: 'poison' });
      return;
    }
    const heartbeat = setInterval(() => m.working(), Math.max(500, Math.floor(o.ackWaitMs / 3)));
    running.set(m, { since: Date.now(), heartbeat });
    const lastAttempt = deliveryCount >= o.maxDeliver;
    try {
      const outcome = await o.handle(job, { deliveryCount, lastAttempt, working: () => m.working(), log });
      switch (outcome.kind) {
        case 'ack':
        case 'fail':
          m.ack();
          outcomes.inc({ outcome: outcome.kind });
          return;
        case 'dead':
          if (await deadLetter(m, outcome.code, outcome.reason)) outcomes.inc({ outcome: 'dead' });
          return;
        case 'retry':
          if (lastAttempt) {
            await o.onExhausted(job, outcome.reason);
            if (await deadLetter(m, 'MAX_DELIVERIES', outcome.reason)) outcomes.inc({ outcome: 'exhausted' });
            return;
          }
          m.nak(outcome.delayMs);
          outcomes.inc({ outcome: 'retry' });
          return;
      }
    } catch (err) {
      // An error the handler did not classify (database down, a bug): retry later, never ack.
      // On the last allowed delivery the job is exhausted like any other: left to the server's
      // max_deliver it would stay in the work queue undeliverable, taking space for good
      // (issue 14). Recording the failure may fail for the same reason (the database is down):
      // then the row stays queued/sending and the outbox relay re-queues it later.
      const reason = `handler error: ${(err as Error).message}`;
      if (lastAttempt) {
        log.error(
          { err: { message: (err as Error).message }, seq: m.seq, deliveryCount },
          'job handler failed on its last delivery; dead-lettering the job',
        );
        await o
          .onExhausted(job, reason)
          .catch((e: unknown) =>
            log.warn(
              { err: { message: (e as Error).message }, seq: m.seq },
              'could not record the exhausted job; the outbox relay re-queues it',
            ),
          );
        if (await deadLetter(m, 'MAX_DELIVERIES', reason)) outcomes.inc({ outcome: 'exhausted' });
        return;
      }
      log.warn({ err: { message: (err as Error).message }, seq: m.seq, deliveryCount }, 'job handler failed; retrying later');
      m.nak(backoffDelay(HANDLER_ERROR_BACKOFF, deliveryCount));
      outcomes.inc({ outcome: 'error' });
    } finally {
      clearInterval(heartbeat);
      running.delete(m);
    }
  }

  let messages: ConsumerMessages | undefined;
  // consecutive interruptions without a job in between: the wait before re-opening grows
  let interruptions = 0;
  let wakeRetry: (() => void) | undefined;
  const loop = (async () => {
    while (!stopped) {
      try {
        if (interruptions > 0) {
          // The durable consumer may be gone (deleted by hand, lost with its stream): create it
          // again rather than wait for someone to restart the worker.
          await ensureConsumer(o.bus, consumerConfig);
          consumer = await o.bus.js.consumers.get(o.stream, o.durable);
        }
        // abort_on_missing_resource: a deleted consumer or stream ends the iterator with an
        // error (handled below) instead of nats.js waiting, silently, for it to come back.
        // Pulls expire after 5 s (heartbeats every 2.5 s) instead of nats.js's 30 s: when the
        // node holding the pull dies or stalls, the missing heartbeats are noticed and the pull
        // goes to another node within seconds, not half a minute (the soak's stall-nats).
        messages = await consumer.consume({ max_messages: o.concurrency, expires: 5000, abort_on_missing_resource: true });
        if (stopped) {
          // stop() ran while this was being opened: it closed the previous one, not this one
          await messages.close().catch(() => {});
          break;
        }
        for await (const m of messages) {
          interruptions = 0;
          if (stopped) {
            m.nak(); // not started: let another worker take it now
            continue;
          }
          inFlight++;
          inFlightGauge.set(inFlight);
          void process(m).finally(release);
          if (inFlight >= o.concurrency) await new Promise<void>((r) => slotFreed.push(r));
        }
      } catch (err) {
        if (stopped) break;
        const wait = backoffDelay(CONSUME_RETRY_BACKOFF, interruptions++);
        log.warn({ err: { message: (err as Error).message }, retryInMs: Math.round(wait) }, 'consume loop interrupted; restarting');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, wait);
          wakeRetry = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wakeRetry = undefined;
      }
    }
  })();

  log.info({ stream: o.stream, durable: o.durable, concurrency: o.concurrency, maxDeliver: o.maxDeliver }, 'consuming jobs');
  return {
    inFlight: () => inFlight,
    async stop() {
      stopped = true;
      wakeRetry?.();
      await messages?.close().catch(() => {});
      while (slotFreed.length) slotFreed.shift()?.();
      if (inFlight > 0) {
        const idleNow = new Promise<void>((r) => idle.push(r));
        const drained = await withTimeout(idleNow, o.drainTimeoutMs ?? 8000, 'drain bound').then(
          () => true,
          () => false,
        );
        if (!drained) {
          const now = Date.now();
          const jobs = [...running].map(([m, r]) => ({ seq: m.seq, deliveryCount: m.info.deliveryCount, runningMs: now - r.since }));
          for (const r of running.values()) clearInterval(r.heartbeat);
          log.warn({ jobs }, 'jobs still running at the drain bound: left unacked for redelivery');
          return;
        }
      }
      await loop.catch(() => {});
    },
  };
}

/** Re-opening the consumer after an interruption (NATS gone, the consumer missing): 1 s doubling to 30 s. */
export const CONSUME_RETRY_BACKOFF: Backoff = { baseMs: 1000, maxMs: 30_000, jitter: 0.2 };

/** Retry delay when nothing better is known: base * 2^(delivery-1), capped (both channels). */
export function backoffFor(baseMs: number, maxMs: number): (deliveryCount: number) => number {
  return (deliveryCount: number) => backoffDelay({ baseMs, maxMs }, deliveryCount - 1);
}

/**
 * The realtime hub: ONE JetStream subscription per gateway process (an ordered consumer on
 * `<P>_EVENTS`) fanned out to every local SSE client, whatever their number.
 *
 * - `lastId` is the highest journal id this process has received: every change event with
 *   id <= lastId has passed through the hub (the bridge publishes in journal order, and its
 *   heartbeat's `position` is published after every event up to it). A resuming client is
 *   replayed (Last-Event-ID, lastId] from the journal while the hub holds its live events, then
 *   switched to live: no gap, no duplicate at the seam. Held frames are bounded too: past half
 *   the client's queue they are dropped and the replay extends over them (HubClient.overrun).
 * - The consumer starts at the stream's last message (or at the start of an empty stream), so
 *   the first message tells where the stream is; until then the hub is not `synced`.
 * - The stream is the transport, the journal the truth: an event whose `prev` (the journal id
 *   the bridge relayed before it) is past `lastId`, or a heartbeat whose `position` is, shows
 *   events this hub never received (lost or reordered on the stream across a NATS node loss or
 *   stall; seen in the soak). The hub then reads them from the journal and delivers them in
 *   order before anything newer, holding no frame meanwhile: while it catches up, stream
 *   messages only move the catch-up's target (catchUp).
 * - Bounded: each client's queue (client-queue.ts) coalesces its writes per tick and cuts the
 *   client off past `clientQueueMax` while its socket does not drain (it resumes with
 *   Last-Event-ID). A client never holds more than one tick's frames plus that bound.
 * - Bounded per process too (issue 14): N clients × that bound is far more than the gateway's
 *   memory (10,000 × 1,000 frames), so the bytes every client holds are summed against
 *   `queueBudgetBytes` (see RealtimeHub.enforceBudget for what is counted and the policy).
 * - At most `maxClientsPerPrincipal` streams per principal (the route answers 429 past it).
 * - Every `keepaliveMs`, one `keepalive` event (no `id:`) to every client, through its bounded
 *   queue like any frame: EventSource clients cannot see `:` comments, and a client that hears
 *   nothing for two intervals reconnects elsewhere (@hatch/contracts stall.ts).
 *
 * Longer than ~350 lines on purpose: the subscription, the seam and the budget policy share the
 * hub's state (lastId, clients, held bytes); the per-client queue and metrics are already apart.
 */
import type { Writable } from 'node:stream';
import { DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream';
import type { Registry } from 'prom-client';
import {
  backoffDelay,
  BUS_BATCH_MAX_BYTES,
  BusChangeBatch,
  BusChangeEvent,
  BusHeartbeat,
  decode,
  unpackBatch,
  type Backoff,
  type KeepaliveEvent,
  type NatsNames,
} from '@hatch/contracts';
import { findJournalAfter, journalRowToEvent, type Db } from '@hatch/db';
import type { Logger } from '@hatch/log';
import type { Bus } from '@hatch/bus';
import { formatControl, formatEvent, HubClient, type QueueOwner } from './client-queue.js';
import { createHubMetrics, type HubMetrics } from './hub-metrics.js';

/**
 * One pull from the events stream: at most this many messages. A message may be a whole journal
 * batch (up to BUS_BATCH_MAX_BYTES), so this also bounds the bytes a pull buffers
 * (BUS_PULL_BYTES). Not a pull's `max_bytes`: an ordered consumer pulling with it on nats-server
 * 2.9.10 delivered nothing (services/gateway/test/realtime-batches.test.ts).
 */
export const BUS_PULL_MESSAGES = 32;
/** The bytes one pull buffers at most. */
export const BUS_PULL_BYTES = BUS_PULL_MESSAGES * BUS_BATCH_MAX_BYTES;
/** Change events fanned out before the hub yields to the end-of-tick budget pass. */
export const HUB_TICK_EVENTS = 1000;

export interface HubOptions {
  names: NatsNames;
  bus: Bus;
  /** the change journal: events missing from the stream are read from it (catchUp) */
  db: Db;
  log: Logger;
  registry: Registry;
  clientQueueMax: number;
  maxClients: number;
  /** bytes all clients together may hold (RealtimeHub.enforceBudget); default: no process budget */
  queueBudgetBytes?: number;
  /** streams one principal may hold on this process; default: no cap */
  maxClientsPerPrincipal?: number;
  /** a `keepalive` event to every client this often (the SSE heartbeat interval); default: none */
  keepaliveMs?: number;
}

/** Re-subscribing to the events stream after a failure: 200 ms doubling to 5 s. */
export const RESUBSCRIBE_BACKOFF: Backoff = { baseMs: 200, maxMs: 5000, jitter: 0.2 };
/** A failed journal read while catching up is retried the same way. */
export const CATCH_UP_BACKOFF = RESUBSCRIBE_BACKOFF;
/** Journal rows read per catch-up query (one batch in memory at a time). */
export const CATCH_UP_BATCH = 500;

export class RealtimeHub implements QueueOwner {
  private readonly clients = new Set<HubClient>();
  /** streams per principal; an entry is deleted when its count falls to 0 (at most one per client) */
  private readonly perPrincipal = new Map<string, number>();
  /** bytes all clients hold (HubClient.bytes summed) */
  private totalBytes = 0;
  private budgetCheckScheduled = false;
  /** clients with frames to write at the end of this tick (one flush pass for all: flushAll) */
  private toFlush: HubClient[] = [];
  private readonly log: Logger;
  private readonly m: HubMetrics;
  private messages: ConsumerMessages | undefined;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private streamSeq = 0;
  private syncWaiters: Array<() => void> = [];
  private idWaiters = new Set<{ id: bigint; resolve: () => void }>();
  /** wakes the backoff waits under way (stop) */
  private readonly wakers = new Set<() => void>();
  private keepaliveTimer: NodeJS.Timeout | undefined;
  /** highest journal id received (see header); valid once `synced` */
  lastId = 0n;
  /** while set, events up to this id are being read from the journal (catchUp) */
  private catchUpTo: bigint | undefined;
  private catchingUp: Promise<void> | undefined;
  synced = false;
  lastHeartbeatAt: number | undefined;
  /** shutting down: every stream was ended and no new one is registered */
  closing = false;
  private lastLagMs: number | undefined;

  constructor(private readonly opts: HubOptions) {
    this.log = opts.log.child({ component: 'realtime-hub' });
    this.m = createHubMetrics(opts.registry, {
      clients: () => this.clients.size,
      queueBytes: () => this.totalBytes,
      principals: () => this.perPrincipal.size,
      lastHeartbeatAt: () => this.lastHeartbeatAt,
    });
  }

  get clientQueueMax(): number {
    return this.opts.clientQueueMax;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  get maxClientsPerPrincipal(): number {
    return this.opts.maxClientsPerPrincipal ?? Infinity;
  }

  /** bytes all clients hold now (the budgeted figure) */
  get queueBytes(): number {
    return this.totalBytes;
  }

  get metrics() {
    return this.m;
  }

  countSent(n: number): void {
    this.m.writes.inc(n);
  }

  countSlow(): void {
    this.m.slow.inc();
  }

  countReplayOverrun(): void {
    this.m.replayOverruns.inc();
  }

  start(): void {
    this.loop ??= this.run();
    const every = this.opts.keepaliveMs;
    if (every !== undefined && !this.keepaliveTimer) {
      this.keepaliveTimer = setInterval(() => this.keepalive(), every);
      this.keepaliveTimer.unref();
    }
  }

  /** One `keepalive` frame (one string for every client), queued like any other frame. */
  keepalive(): void {
    if (this.clients.size === 0) return;
    const data: KeepaliveEvent = { type: 'keepalive', timestamp: new Date().toISOString() };
    const text = formatControl('keepalive', data);
    const bytes = Buffer.byteLength(text);
    for (const c of [...this.clients]) c.enqueue(text, bytes);
  }

  /** Whether `principal` already holds its cap of streams on this process. */
  principalFull(principal: string): boolean {
    return (this.perPrincipal.get(principal) ?? 0) >= this.maxClientsPerPrincipal;
  }

  /**
   * Every frame goes to `out`; `onCut` runs when the client is cut off for slowness. Undefined at
   * the process's connection limit or the principal's cap (check principalFull first to tell them
   * apart: both are decided in the same tick, so no await may come between).
   */
  register(out: Writable, conversationId: string | undefined, onCut: () => void, principal?: string): HubClient | undefined {
    if (this.closing) return undefined;
    if (this.clients.size >= this.opts.maxClients) {
      this.m.rejected.inc({ reason: 'limit' });
      return undefined;
    }
    if (principal !== undefined && this.principalFull(principal)) return undefined;
    const c = new HubClient(this, out, conversationId, this.opts.clientQueueMax, onCut, principal);
    this.clients.add(c);
    if (principal !== undefined) this.perPrincipal.set(principal, (this.perPrincipal.get(principal) ?? 0) + 1);
    return c;
  }

  remove(c: HubClient): void {
    if (!this.clients.delete(c) || c.principal === undefined) return;
    const n = (this.perPrincipal.get(c.principal) ?? 1) - 1;
    if (n > 0) this.perPrincipal.set(c.principal, n);
    else this.perPrincipal.delete(c.principal);
  }

  scheduleFlush(c: HubClient): void {
    if (this.toFlush.push(c) === 1) setImmediate(this.flushAll);
  }

  /**
   * One pass at the end of the tick writes every client's frames (each client's coalesced into
   * one write): one immediate for all, not one per client (1,000 per event at 1k clients, bench P6).
   */
  private readonly flushAll = (): void => {
    const due = this.toFlush;
    this.toFlush = [];
    for (const c of due) c.flush();
  };

  /** A client's held bytes changed (HubClient keeps its own share; this is the sum). */
  addBytes(delta: number): void {
    this.totalBytes += delta;
    if (delta > 0) this.checkBudget();
  }

  /** Over budget: one enforcement pass at the end of this tick (a pass walks every client). */
  checkBudget(): void {
    const budget = this.opts.queueBudgetBytes;
    if (budget === undefined || this.totalBytes <= budget || this.budgetCheckScheduled) return;
    this.budgetCheckScheduled = true;
    setImmediate(() => {
      this.budgetCheckScheduled = false;
      this.enforceBudget(budget);
    });
  }

  /**
   * The process budget (issue 14). Counted, per client: frames queued for it, live frames held
   * while it replays, and frames written to its socket whose write has not called back (Node
   * still holds them: the kernel has not taken them). A live frame's text is one string shared
   * by every client, yet it is counted for each: once written it becomes a copy per socket.
   * Not counted: what the kernel has taken (socket send buffers, bounded per socket by
   * net.ipv4.tcp_wmem), `:` heartbeat comments and refusals written straight to the response
   * (a few bytes each), HTTP chunk framing, and the fixed cost of a connection (~14 KiB, bench P5).
   *
   * Policy: when the sum passes the budget, only clients whose socket refused their last write
   * and has not drained since (`blocked`: not reading now) are candidates, the one holding the
   * most bytes first, and only as many as it takes to get back under the budget; each is cut as
   * a slow client (it resumes with Last-Event-ID). A client whose socket takes its writes is
   * never cut for the budget, whatever it holds: its frames are on their way out. Most bytes
   * first, because a client that stopped reading keeps everything sent since (up to its queue
   * bound), while one that reads and whose socket is full for a moment holds at most its last
   * write and what arrived before the drain: every hoarder holding more goes before it, and the
   * sum is back under the budget long before a reader's turn unless readers' in-flight writes
   * alone fill it. The sum passes the budget by at most the frames of the tick that crossed it
   * (this pass runs at its end), or by what reading clients have in flight.
   */
  private enforceBudget(budget: number): void {
    if (this.totalBytes <= budget) return;
    const blocked = [...this.clients].filter((c) => c.blocked && c.bytes > 0).sort((a, b) => b.bytes - a.bytes);
    for (const c of blocked) {
      if (this.totalBytes <= budget) break;
      this.m.budgetCuts.inc();
      c.cut();
    }
  }

  /** Waits until the hub knows where the stream is (bounded). */
  waitSynced(timeoutMs: number): Promise<boolean> {
    if (this.synced) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.syncWaiters = this.syncWaiters.filter((w) => w !== done);
        resolve(this.synced);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.syncWaiters.push(done);
    });
  }

  /** Waits until lastId >= id (a client may resume here with an id another replica saw first). */
  waitForId(id: bigint, timeoutMs: number): Promise<boolean> {
    if (this.lastId >= id) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w = {
        id,
        resolve: () => {
          clearTimeout(timer);
          this.idWaiters.delete(w);
          resolve(true);
        },
      };
      const timer = setTimeout(() => {
        this.idWaiters.delete(w);
        resolve(this.lastId >= id);
      }, timeoutMs);
      this.idWaiters.add(w);
    });
  }

  /** Ends every stream (shutdown: clients reconnect to another replica); no stream is taken after. */
  closeAll(end: (c: HubClient) => void): void {
    this.closing = true;
    for (const c of [...this.clients]) {
      end(c);
      c.close();
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.keepaliveTimer);
    for (const w of [...this.wakers]) w();
    await this.messages?.close().catch(() => undefined);
    await this.loop;
    await this.catchingUp;
  }

  /** Throws unless the events subscription is up (gateway readiness). */
  check(): Promise<void> {
    if (!this.synced || !this.messages) return Promise.reject(new Error('events subscription not established'));
    return Promise.resolve();
  }

  /** For /readyz: commit → this gateway lag of the last event, and how old the bridge's last heartbeat is. */
  lagReport(): { last_event_lag_ms: number | null; heartbeat_age_ms: number | null; position: string; catching_up_to: string | null } {
    return {
      last_event_lag_ms: this.lastLagMs ?? null,
      heartbeat_age_ms: this.lastHeartbeatAt === undefined ? null : Date.now() - this.lastHeartbeatAt,
      position: this.lastId.toString(),
      catching_up_to: this.catchUpTo?.toString() ?? null,
    };
  }

  /** A retry wait that stop() ends at once. */
  private backoffWait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.stopping) return resolve();
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }

  private markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    const w = this.syncWaiters;
    this.syncWaiters = [];
    for (const f of w) f();
    this.log.info({ lastId: this.lastId.toString(), streamSeq: this.streamSeq }, 'events subscription synced');
  }

  private advance(id: bigint): void {
    if (id <= this.lastId) return;
    this.lastId = id;
    for (const w of [...this.idWaiters]) if (w.id <= id) w.resolve();
  }

  private async run(): Promise<void> {
    const { names, bus } = this.opts;
    let failures = 0;
    while (!this.stopping) {
      try {
        let startSeq = this.streamSeq + 1;
        if (this.streamSeq === 0) {
          const info = await bus.jsm.streams.info(names.streams.events);
          startSeq = info.state.last_seq > 0 ? info.state.last_seq : 0;
        }
        // No subject filter: the stream holds only events, and filter_subjects needs NATS 2.10.
        const consumer = await bus.js.consumers.get(names.streams.events, {
          ...(startSeq > 0
            ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSeq }
            : { deliver_policy: DeliverPolicy.All }),
        });
        // Pulls expire after 5 s (heartbeats every 2.5 s) instead of nats.js's 30 s: a lost or
        // stalled NATS node is noticed within seconds and the ordered consumer re-created on
        // another (the soak measured change → SSE p99 77 s after a node kill with 30 s, 14 s with 5 s).
        // Bounded in messages, hence in bytes (BUS_PULL_BYTES; docs/architecture.md, rule 4).
        const messages = await consumer.consume({ max_messages: BUS_PULL_MESSAGES, expires: 5000 });
        this.messages = messages;
        if (this.stopping) {
          // stop() ran while the consumer was being created: it could not close this one
          await messages.close().catch(() => undefined);
          break;
        }
        if (startSeq === 0) this.markSynced(); // empty stream: nothing happened yet
        let sinceYield = 0;
        for await (const msg of this.messages) {
          failures = 0; // a message: the subscription works
          this.streamSeq = msg.seq;
          for (const env of this.take(msg.subject, msg.data)) {
            this.handleEvent(env);
            // One tick fans out at most HUB_TICK_EVENTS, even from within a batch: then the
            // end-of-tick budget pass runs and slow clients are cut before more is queued
            // (memory-budget.ts). Nothing else reads the stream meanwhile: the order holds.
            if (++sinceYield >= HUB_TICK_EVENTS) {
              sinceYield = 0;
              await new Promise<void>((resolve) => setImmediate(resolve));
            }
          }
        }
      } catch (err) {
        if (this.stopping) break;
        this.log.warn({ err: { message: (err as Error).message }, failures }, 'events subscription failed; retrying');
      }
      this.messages = undefined;
      if (this.stopping) break;
      // An iterator that ended without an error counts too: a subscription that keeps ending
      // at once must not be re-created in a tight loop.
      await this.backoffWait(backoffDelay(RESUBSCRIBE_BACKOFF, failures++));
    }
  }

  /**
   * One message of the events stream: a heartbeat is handled here; the change events it holds
   * (one, or a batch's, in order) are returned for handleEvent, none before the hub is synced.
   */
  private take(subject: string, data: Uint8Array): BusChangeEvent[] {
    try {
      if (subject === this.opts.names.subjects.eventFor('heartbeat')) {
        const hb = decode(BusHeartbeat, data);
        this.lastHeartbeatAt = Date.now();
        const position = BigInt(hb.position);
        // Every event up to `position` was published before this heartbeat: any this hub lacks
        // was lost or reordered on the stream.
        if (!this.synced) this.advance(position);
        else if (position > this.lastId) this.catchUp(position, 'heartbeat');
        this.markSynced();
        return [];
      }
      if (subject === this.opts.names.subjects.eventBatch) {
        const events = unpackBatch(decode(BusChangeBatch, data));
        // The first message after start is the stream's last one: it only tells where we are.
        if (!this.synced) {
          this.advance(BigInt(events.at(-1)?.id ?? '0'));
          this.markSynced();
          return [];
        }
        // Each event in order, exactly as if it had come alone: a first event whose `prev` is
        // past lastId starts a catch-up, and the rest of the batch only raises its target.
        return events;
      }
      // A single event: from a bridge older than batches (a rolling upgrade).
      const env = decode(BusChangeEvent, data);
      if (!this.synced) {
        this.advance(BigInt(env.id));
        this.markSynced();
        return [];
      }
      return [env];
    } catch (err) {
      this.log.warn({ err: { message: (err as Error).message }, subject }, 'undecodable message on the events stream; ignored');
      return [];
    }
  }

  /** One relayed change event, once synced: delivered, dropped as already seen, or the start of a catch-up. */
  private handleEvent(env: BusChangeEvent): void {
    const id = BigInt(env.id);
    if (this.catchUpTo !== undefined) {
      // Relayed, so in the journal: the catch-up under way reads it in its turn.
      if (id > this.catchUpTo) this.catchUpTo = id;
      return;
    }
    if (id <= this.lastId) return; // a re-publish (a new bridge re-relays from its saved position)
    if (env.prev !== undefined && BigInt(env.prev) > this.lastId) return this.catchUp(id, 'gap');
    this.deliverLive(env);
  }

  /** One change event to every local client (they filter), in journal order. */
  private deliverLive(env: BusChangeEvent): void {
    this.advance(BigInt(env.id));
    this.m.events.inc();
    this.lastLagMs = Math.max(0, Date.now() - Date.parse(env.event.timestamp));
    this.m.lag.observe(this.lastLagMs / 1000);
    const frame = formatEvent(env);
    for (const c of this.clients) c.deliver(frame);
  }

  /**
   * Events in (lastId, target] never reached this hub: read them from the journal and deliver
   * them in order. Stream messages arriving meanwhile only raise the target (they are relayed,
   * so the journal holds them), so nothing is held in memory but one batch; a journal read that
   * fails is retried with backoff (live delivery waits: the order is the promise).
   */
  private catchUp(target: bigint, reason: 'gap' | 'heartbeat'): void {
    if (this.catchUpTo !== undefined) {
      // One catch-up at a time: a second reader of the same rows would deliver them twice (a
      // heartbeat during a slow catch-up did, in the short soak). The one under way goes further.
      if (target > this.catchUpTo) this.catchUpTo = target;
      return;
    }
    this.m.catchUps.inc({ reason });
    this.log.warn(
      { after: this.lastId.toString(), upTo: target.toString(), reason },
      'events missing from the events stream; catching up from the journal',
    );
    this.catchUpTo = target;
    this.catchingUp = this.runCatchUp().finally(() => {
      this.catchingUp = undefined;
    });
  }

  private async runCatchUp(): Promise<void> {
    let failures = 0;
    while (this.catchUpTo !== undefined && !this.stopping) {
      const target = this.catchUpTo;
      try {
        const rows = await findJournalAfter(this.opts.db.db, this.lastId.toString(), CATCH_UP_BATCH, target.toString());
        for (const row of rows) {
          if (BigInt(row.id) <= this.lastId) continue; // delivered meanwhile: never twice
          const env = journalRowToEvent(row);
          this.m.caughtUp.inc();
          this.deliverLive(env);
        }
        failures = 0;
        if (rows.length < CATCH_UP_BATCH) {
          // No journal row is left up to `target`: every id up to it is delivered or never existed.
          this.advance(target);
          if (this.catchUpTo === target) this.catchUpTo = undefined;
        }
      } catch (err) {
        const wait = backoffDelay(CATCH_UP_BACKOFF, failures++);
        this.log.warn(
          { err: { message: (err as Error).message }, retryInMs: Math.round(wait) },
          'journal read failed while catching up; retrying',
        );
        await this.backoffWait(wait);
      }
    }
    if (this.catchUpTo !== undefined) this.catchUpTo = undefined; // stopping
  }
}

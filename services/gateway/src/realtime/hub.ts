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
 * - Bounded: writes are coalesced per client per tick (one socket write for every frame queued
 *   since the last one); while the socket does not drain, frames queue, and past
 *   `clientQueueMax` the client is cut off (it resumes with Last-Event-ID) and counted. A client
 *   never holds more than one tick's frames plus that bound: memory never grows without bound.
 * - Bounded per process too (issue 14): N clients × that bound is far more than the gateway's
 *   memory (10,000 × 1,000 frames), so the bytes every client holds are summed against
 *   `queueBudgetBytes` (see RealtimeHub.enforceBudget for what is counted and the policy).
 * - At most `maxClientsPerPrincipal` streams per principal (the route answers 429 past it).
 */
import { randomUUID } from 'node:crypto';
import type { Writable } from 'node:stream';
import { DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { BusChangeEvent, BusHeartbeat, decode, type NatsNames } from '@hatch/contracts';
import type { Logger } from '@hatch/log';
import type { Bus } from '@hatch/bus';

export interface HubOptions {
  names: NatsNames;
  bus: Bus;
  log: Logger;
  registry: Registry;
  clientQueueMax: number;
  maxClients: number;
  /** bytes all clients together may hold (RealtimeHub.enforceBudget); default: no process budget */
  queueBudgetBytes?: number;
  /** streams one principal may hold on this process; default: no cap */
  maxClientsPerPrincipal?: number;
}

/** Half of a client's queue bound: a replay batch's size, and the live frames held meanwhile. */
export const replayHalf = (clientQueueMax: number): number => Math.max(1, Math.floor(clientQueueMax / 2));

/** Overruns of a replaying client whose socket is not draining before it is cut as slow. */
const REPLAY_STRIKES = 2;

/** One formatted SSE frame and what a filter needs to know about it. */
export interface Frame {
  id: bigint;
  text: string;
  /** its UTF-8 length, measured once (a live frame goes to every client) */
  bytes: number;
  conversationId?: string;
}

export function formatEvent(env: BusChangeEvent): Frame {
  const text = `id: ${env.id}\nevent: ${env.event.type}\ndata: ${JSON.stringify(env.event)}\n\n`;
  return {
    id: BigInt(env.id),
    text,
    bytes: Buffer.byteLength(text),
    conversationId: env.event.type === 'message_update' ? env.event.conversation_id : undefined,
  };
}

export function formatControl(event: string, data: unknown, id?: string): string {
  return `${id !== undefined ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export class HubClient {
  readonly id = randomUUID();
  private queue: string[] = [];
  /** live frames held back while the client is being replayed */
  private held: Frame[] = [];
  /** frames with an id up to this one were already seen by the client (resume) */
  skipUpTo = -1n;
  private replaying = true;
  /** held frames past this many overrun the replay (the replay batches use the other half) */
  private readonly heldMax: number;
  /** live frames up to this id were dropped while replaying: the replay must reach it (see overrun) */
  replayUpTo = -1n;
  private strikes = 0;
  /** writes the socket took (returned true, or drained): progress, as seen by overrun() */
  private drains = 0;
  private drainsAtOverrun = 0;
  private scheduled = false;
  private waitingDrain = false;
  private drainWaiters: Array<() => void> = [];
  /** bytes of `queue`, of `held`, and written to the socket but not yet taken by the kernel */
  private queueBytes = 0;
  private heldBytes = 0;
  private unflushedBytes = 0;
  closed = false;

  constructor(
    private readonly hub: RealtimeHub,
    private readonly out: Writable,
    readonly conversationId: string | undefined,
    private readonly max: number,
    private readonly onCut: () => void,
    /** whose stream this is (the per-principal cap) */
    readonly principal?: string,
  ) {
    this.heldMax = replayHalf(max);
  }

  /** frames queued and not yet handed to the socket (for tests and the bound) */
  get queued(): number {
    return this.queue.length + this.held.length;
  }

  /** bytes this client holds in the process (counted against the hub's budget) */
  get bytes(): number {
    return this.queueBytes + this.heldBytes + this.unflushedBytes;
  }

  /** its socket refused the last write and has not drained since: it is not reading now */
  get blocked(): boolean {
    return this.waitingDrain;
  }

  /** A live frame from the hub. */
  deliver(frame: Frame): void {
    if (this.closed) return;
    if (this.conversationId !== undefined && frame.conversationId !== this.conversationId) return;
    if (frame.id <= this.skipUpTo) return;
    if (this.replaying) {
      if (this.held.length >= this.heldMax) return this.overrun(frame.id);
      this.held.push(frame);
      this.heldBytes += frame.bytes;
      this.hub.addBytes(frame.bytes);
      return;
    }
    this.enqueue(frame.text, frame.bytes);
  }

  /**
   * Live frames held during a replay went past their half of the bound. Every one of them is in
   * the journal too, so they are dropped and the replay goes on up to `replayUpTo` instead: a
   * client that is merely catching up (a replica whose hub is still relaying a burst) is not cut.
   * Only when the socket took nothing since the previous overrun (it does not drain) is it a slow
   * client: a few such overruns in a row and it is cut like one in live mode. A client that reads,
   * however slowly, makes progress through the replay and is never cut here.
   */
  private overrun(id: bigint): void {
    // stuck: the socket has not taken a single write since the previous overrun
    const stuck = this.waitingDrain && this.drains === this.drainsAtOverrun;
    this.drainsAtOverrun = this.drains;
    this.strikes = stuck ? this.strikes + 1 : 0;
    if (this.strikes > REPLAY_STRIKES) return this.cut();
    this.dropHeld();
    this.replayUpTo = id;
    this.hub.metrics.replayOverruns.inc();
  }

  /**
   * A frame of this client's own (connected, replay, reset), or a live one: written in order with
   * the rest. Slow means the bound is reached *while the socket does not drain*: frames that
   * arrive in one tick (one read of the bus, at most its 1,000-message pull, or one replay batch)
   * are written together at the end of it, whatever their number, and are no sign of slowness.
   */
  enqueue(text: string, bytes = Buffer.byteLength(text)): void {
    if (this.closed) return;
    if (this.waitingDrain && this.queued >= this.max) return this.cut();
    this.queue.push(text);
    this.queueBytes += bytes;
    this.hub.addBytes(bytes);
    this.schedule();
  }

  /** Replay done: the held live frames follow, then live. */
  goLive(): void {
    this.replaying = false;
    const held = this.held;
    this.dropHeld();
    for (const f of held) if (f.id > this.skipUpTo) this.enqueue(f.text, f.bytes);
  }

  private dropHeld(): void {
    this.held = [];
    this.hub.addBytes(-this.heldBytes);
    this.heldBytes = 0;
  }

  /** Resolves when everything queued so far was handed to the socket and it drained. */
  drained(): Promise<void> {
    if (this.closed || (this.queue.length === 0 && !this.waitingDrain && !this.scheduled)) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.scheduled || this.waitingDrain) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    if (this.closed) return;
    if (this.queue.length > 0) {
      const chunk = this.queue.length === 1 ? (this.queue[0] as string) : this.queue.join('');
      this.queue = [];
      // Still held (by the socket) until the write's callback: the kernel took all of it.
      const bytes = this.queueBytes;
      this.queueBytes = 0;
      this.unflushedBytes += bytes;
      this.hub.countSent(1);
      const written = () => {
        if (this.closed) return; // close() already gave back everything
        this.unflushedBytes -= bytes;
        this.hub.addBytes(-bytes);
      };
      if (!this.out.write(chunk, written)) {
        this.waitingDrain = true;
        this.hub.checkBudget(); // a client that stopped reading may now be cut for the budget
        this.out.once('drain', () => {
          this.waitingDrain = false;
          this.drains++;
          if (this.queue.length > 0) this.schedule();
          else this.releaseWaiters();
        });
        return;
      }
      this.drains++;
    }
    this.releaseWaiters();
  }

  private releaseWaiters(): void {
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const f of w) f();
  }

  /** Cut off as too slow: counted, the stream and its connection closed; it resumes by id. */
  cut(): void {
    if (this.closed) return;
    this.hub.countSlow();
    this.close();
    this.onCut();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.held = [];
    // A destroyed socket may never call back the write it holds: everything is given back here.
    this.hub.addBytes(-this.bytes);
    this.queueBytes = this.heldBytes = this.unflushedBytes = 0;
    this.releaseWaiters();
    this.hub.remove(this);
  }
}

export class RealtimeHub {
  private readonly clients = new Set<HubClient>();
  /** streams per principal; an entry is deleted when its count falls to 0 (at most one per client) */
  private readonly perPrincipal = new Map<string, number>();
  /** bytes all clients hold (HubClient.bytes summed) */
  private totalBytes = 0;
  private budgetCheckScheduled = false;
  private readonly log: Logger;
  private readonly m;
  private messages: ConsumerMessages | undefined;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private streamSeq = 0;
  private syncWaiters: Array<() => void> = [];
  private idWaiters = new Set<{ id: bigint; resolve: () => void }>();
  private wakeBackoff: (() => void) | undefined;
  /** highest journal id received (see header); valid once `synced` */
  lastId = 0n;
  synced = false;
  lastHeartbeatAt: number | undefined;
  private lastLagMs: number | undefined;

  constructor(private readonly opts: HubOptions) {
    this.log = opts.log.child({ component: 'realtime-hub' });
    const registers = [opts.registry];
    const clients = this.clients;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- read by a prom-client collect()
    const self = this;
    this.m = {
      clients: new Gauge({
        name: 'hatch_sse_clients',
        help: 'connected SSE clients',
        registers,
        collect() {
          this.set(clients.size);
        },
      }),
      queueBytes: new Gauge({
        name: 'hatch_sse_queue_bytes',
        help: 'bytes of SSE frames held for clients: queued, held during replays, written and not yet taken by the kernel (budget: HATCH_SSE_QUEUE_BUDGET_BYTES)',
        registers,
        collect() {
          this.set(self.totalBytes);
        },
      }),
      principals: new Gauge({
        name: 'hatch_sse_principals',
        help: 'principals holding at least one SSE stream (each capped at HATCH_SSE_MAX_CLIENTS_PER_PRINCIPAL)',
        registers,
        collect() {
          this.set(self.perPrincipal.size);
        },
      }),
      events: new Counter({ name: 'hatch_sse_events_received_total', help: 'change events received from NATS', registers }),
      writes: new Counter({ name: 'hatch_sse_writes_total', help: 'coalesced socket writes to SSE clients', registers }),
      slow: new Counter({ name: 'hatch_sse_slow_client_disconnects_total', help: 'SSE clients cut off for not keeping up', registers }),
      budgetCuts: new Counter({
        name: 'hatch_sse_budget_disconnects_total',
        help: 'SSE clients not reading cut off because the process queue byte budget was exceeded (counted in hatch_sse_slow_client_disconnects_total too)',
        registers,
      }),
      replays: new Counter({ name: 'hatch_sse_replays_total', help: 'SSE resumes replayed from Last-Event-ID', registers }),
      replayOverruns: new Counter({
        name: 'hatch_sse_replay_overruns_total',
        help: 'live frames held during a replay went past their bound: dropped, and the replay extended over them',
        registers,
      }),
      resets: new Counter({ name: 'hatch_sse_resets_total', help: 'reset events (Last-Event-ID not resumable)', labelNames: ['reason'], registers }),
      rejected: new Counter({ name: 'hatch_sse_rejected_total', help: 'SSE connections refused (limit or not ready)', labelNames: ['reason'], registers }),
      lag: new Histogram({
        name: 'hatch_realtime_lag_seconds',
        help: 'change time to fan-out in this gateway',
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        registers,
      }),
      heartbeatAge: new Gauge({
        name: 'hatch_realtime_heartbeat_age_seconds',
        help: 'seconds since the last bridge heartbeat reached this gateway',
        registers,
        collect() {
          const at = self.lastHeartbeatAt;
          this.set(at === undefined ? -1 : (Date.now() - at) / 1000);
        },
      }),
    };
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

  start(): void {
    this.loop ??= this.run();
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

  /** Ends every stream (shutdown: clients reconnect to another replica). */
  closeAll(end: (c: HubClient) => void): void {
    for (const c of [...this.clients]) {
      end(c);
      c.close();
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wakeBackoff?.();
    await this.messages?.close().catch(() => undefined);
    await this.loop;
  }

  /** Throws unless the events subscription is up (gateway readiness). */
  check(): Promise<void> {
    if (!this.synced || !this.messages) return Promise.reject(new Error('events subscription not established'));
    return Promise.resolve();
  }

  /** For /readyz: commit → this gateway lag of the last event, and how old the bridge's last heartbeat is. */
  lagReport(): { last_event_lag_ms: number | null; heartbeat_age_ms: number | null; position: string } {
    return {
      last_event_lag_ms: this.lastLagMs ?? null,
      heartbeat_age_ms: this.lastHeartbeatAt === undefined ? null : Date.now() - this.lastHeartbeatAt,
      position: this.lastId.toString(),
    };
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
    let backoff = 200;
    while (!this.stopping) {
      try {
        let startSeq = this.streamSeq + 1;
        if (this.streamSeq === 0) {
          const info = await bus.jsm.streams.info(names.streams.events);
          startSeq = info.state.last_seq > 0 ? info.state.last_seq : 0;
        }
        // No subject filter: the stream holds only events, and filter_subjects needs NATS 2.10.
        const consumer = await bus.js.consumers.get(names.streams.events, {
          ...(startSeq > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSeq } : { deliver_policy: DeliverPolicy.All }),
        });
        const messages = await consumer.consume({ max_messages: 1000 });
        this.messages = messages;
        if (this.stopping) {
          // stop() ran while the consumer was being created: it could not close this one
          await messages.close().catch(() => undefined);
          break;
        }
        if (startSeq === 0) this.markSynced(); // empty stream: nothing happened yet
        backoff = 200;
        for await (const msg of this.messages) {
          this.streamSeq = msg.seq;
          this.handle(msg.subject, msg.data);
        }
      } catch (err) {
        if (this.stopping) break;
        this.log.warn({ err: { message: (err as Error).message }, retryInMs: backoff }, 'events subscription failed; retrying');
      }
      this.messages = undefined;
      if (this.stopping) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, backoff);
        this.wakeBackoff = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeBackoff = undefined;
      backoff = Math.min(backoff * 2, 5000);
    }
  }

  private handle(subject: string, data: Uint8Array): void {
    try {
      if (subject === this.opts.names.subjects.eventFor('heartbeat')) {
        const hb = decode(BusHeartbeat, data);
        this.lastHeartbeatAt = Date.now();
        this.advance(BigInt(hb.position));
        this.markSynced();
        return;
      }
      const env = decode(BusChangeEvent, data);
      const id = BigInt(env.id);
      const fresh = id > this.lastId;
      this.advance(id);
      const wasSynced = this.synced;
      this.markSynced();
      // The first message after start is the stream's last one: it only tells where we are.
      if (!fresh || !wasSynced) return;
      this.m.events.inc();
      this.lastLagMs = Math.max(0, Date.now() - Date.parse(env.event.timestamp));
      this.m.lag.observe(this.lastLagMs / 1000);
      const frame = formatEvent(env);
      for (const c of this.clients) c.deliver(frame);
    } catch (err) {
      this.log.warn({ err: { message: (err as Error).message }, subject }, 'undecodable message on the events stream; ignored');
    }
  }
}

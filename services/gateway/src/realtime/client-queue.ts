/**
 * One SSE client's queue (issue 16: apart from the hub that fans out to many): frames are
 * coalesced per client per tick (one socket write for every frame queued since the last one, in
 * one flush pass over every client with frames, which the owner schedules once per tick);
 * while the socket does not drain, frames queue, and past the client's bound it is cut off (it
 * resumes with Last-Event-ID). While the client is replayed from the journal its live frames are
 * held, within half that bound (HubClient.overrun). Every byte it holds is reported to its owner,
 * which sums them against the process budget (RealtimeHub.enforceBudget).
 */
import { randomUUID } from 'node:crypto';
import { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type { BusChangeEvent } from '@hatch/contracts';

/** What a client reports to the hub that owns it. */
export interface QueueOwner {
  /** the bytes this client holds changed by `delta` */
  addBytes(delta: number): void;
  /** the client's socket stopped taking writes: it may now be cut for the budget */
  checkBudget(): void;
  /** the client has frames to write: call its flush() once, at the end of this tick */
  scheduleFlush(c: HubClient): void;
  /** `n` coalesced socket writes */
  countSent(n: number): void;
  /** cut as too slow */
  countSlow(): void;
  /** held live frames overran their bound during a replay */
  countReplayOverrun(): void;
  /** the client closed: forget it */
  remove(c: HubClient): void;
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

/**
 * The socket of an SSE response to write to directly, pre-framed, or undefined: write through the
 * response. Direct only once the response's head went out with a first write through it, while
 * the response is chunked, not ended, attached to its socket and holds nothing itself (its
 * `writableLength` is all the socket's), so the bytes reach the socket in the order written. The
 * response still ends the stream (its `0` chunk) and writes the heartbeat comments.
 */
function directSocket(out: Writable | ServerResponse): Socket | undefined {
  if (!(out instanceof ServerResponse) || !out.chunkedEncoding || out.writableEnded) return undefined;
  const sock = out.socket;
  if (!sock || sock.destroyed || !sock.writable || out.writableLength !== sock.writableLength) return undefined;
  return sock;
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
  /** a first write went through the response (its head with it): later ones may go to its socket */
  private headSent = false;
  private drainWaiters: Array<() => void> = [];
  /** bytes of `queue`, of `held`, and written to the socket but not yet taken by the kernel */
  private queueBytes = 0;
  private heldBytes = 0;
  private unflushedBytes = 0;
  closed = false;

  constructor(
    private readonly hub: QueueOwner,
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
    this.hub.countReplayOverrun();
  }

  /**
   * A frame of this client's own (connected, replay, reset), or a live one: written in order with
   * the rest. Slow means the bound is reached *while the socket does not drain*: frames that
   * arrive in one tick (at most HUB_TICK_EVENTS of the bus, batches included, or one replay batch)
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
    this.hub.scheduleFlush(this);
  }

  /** Writes everything queued as one socket write (the owner's flush pass; see schedule). */
  flush(): void {
    this.scheduled = false;
    if (this.closed) return;
    if (this.queue.length > 0) {
      const chunk = this.queue.length === 1 ? (this.queue[0] as string) : this.queue.join('');
      this.queue = [];
      const bytes = this.queueBytes;
      this.queueBytes = 0;
      this.hub.countSent(1);
      const target = this.write(chunk, bytes);
      if (target) {
        this.waitingDrain = true;
        this.hub.checkBudget(); // a client that stopped reading may now be cut for the budget
        target.once('drain', () => {
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

  /**
   * One write of `chunk` (`bytes` of UTF-8). Its bytes stay counted until Node has handed all of
   * it to the kernel. Straight to the socket (directSocket) it is one string, framed as one HTTP
   * chunk, without a callback: when the socket took it at once (the usual case) nothing is held;
   * otherwise an empty write queued behind it calls back once it is taken. Through a response or
   * any other Writable, the write's own callback does. Returns the stream to wait on for `drain`
   * when it refused more.
   */
  private write(chunk: string, bytes: number): Writable | undefined {
    const sock = this.headSent ? directSocket(this.out) : undefined;
    if (sock === undefined) {
      this.headSent = true;
      this.unflushedBytes += bytes;
      return this.out.write(chunk, () => this.release(bytes)) ? undefined : this.out;
    }
    // The chunk's size measured from the string itself, never taken on trust: a wrong size breaks
    // the HTTP framing, and a size of 0 is the chunk that ENDS the response.
    const size = Buffer.byteLength(chunk);
    if (size === 0) {
      this.hub.addBytes(-bytes);
      return undefined;
    }
    const ok = sock.write(`${size.toString(16)}\r\n${chunk}\r\n`);
    if (sock.writableLength > 0) {
      this.unflushedBytes += bytes;
      sock.write('', () => this.release(bytes));
    } else {
      this.hub.addBytes(-bytes); // the kernel took it all
    }
    return ok ? undefined : sock;
  }

  /** The kernel took a write held since write(): its bytes are no longer held. */
  private release(bytes: number): void {
    if (this.closed) return; // close() already gave back everything
    this.unflushedBytes -= bytes;
    this.hub.addBytes(-bytes);
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

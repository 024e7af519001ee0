/**
 * The chained publisher: journal rows onto `<P>_EVENTS`, one message per batch of consecutive
 * rows (BusChangeBatch on `<p>.events.batch`, bounded in rows and bytes), pipelined (at most
 * PUBLISH_WINDOW messages in flight) yet never reordered. Every publish but the first of a chain
 * expects the stream's last msgID to be its predecessor's, so once one fails every later one in
 * flight fails too and nothing overtakes the failed batch (docs/realtime.md#chained-publishing).
 * When the chain tip is unknown (a takeover, a failure) it is read from the stream's last
 * message, and the rows that message already holds are passed over (the takeover rule,
 * docs/realtime.md#one-message-per-journal-batch).
 */
import { randomUUID } from 'node:crypto';
import { JetStreamApiCodes, JetStreamApiError, type PubAck } from '@nats-io/jetstream';
import { BUS_BATCH_MAX_BYTES, BusChangeBatch, BusChangeEvent, BusHeartbeat, check, decode, encode, type NatsNames } from '@hatch/contracts';
import { journalRowToEvent, type JournalRow } from '@hatch/db';
import type { Logger } from '@hatch/log';
import { withTimeout } from '@hatch/async';
import type { Bus } from '@hatch/bus';
import type { BridgeMetrics } from './metrics.js';

/** Messages in flight at most (docs/architecture.md, rule 4); each holds one encoded batch. */
export const PUBLISH_WINDOW = 256;
export const PUBLISH_TIMEOUT_MS = 5000;
export const HEARTBEAT_TIMEOUT_MS = 3000;
/** Bound of reading the stream's last message (the tip after a takeover or a failure). */
export const TAIL_READ_TIMEOUT_MS = 5000;
/** Bytes per message at most (the one definition is BUS_BATCH_MAX_BYTES in @hatch/contracts). */
export const BATCH_MAX_BYTES = BUS_BATCH_MAX_BYTES;
/**
 * JetStream API error code of a failed Nats-Expected-Last-Msg-Id (another publisher got in
 * between); nats.js names the sequence one (JetStreamApiCodes) but not this one.
 */
const WRONG_LAST_MSG_ID = 10070;

/** A failed expectation: expected while two bridges overlap (a takeover), not a fault. */
export function isChainBroken(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === WRONG_LAST_MSG_ID || err.code === JetStreamApiCodes.StreamWrongLastSequence);
}

type PublishOutcome = { ack: PubAck } | { err: unknown };

/** One message: consecutive rows, their encoded batch and its msgID (the last row's journal id). */
interface Batch {
  rows: JournalRow[];
  data: Uint8Array;
  msgID: string;
}

interface InFlight {
  batch: Batch;
  outcome: Promise<PublishOutcome>;
}

export interface PublishPass {
  /** checked before each message: stop issuing (stopping, or no longer active) */
  keepGoing(): boolean;
  /** each row of the contiguous settled prefix, in order (acked, duplicate, or passed over) */
  onSettled(row: JournalRow): void;
}

export interface ChainedPublisher {
  /**
   * Publishes `rows` (the consecutive journal rows after `after`, the position they were read
   * from) in batches, pipelined and chained, each batch naming its first row's predecessor as
   * `prev`; `onSettled` runs over the contiguous settled prefix. Throws the first failure once
   * everything in flight has settled. Returns how many rows were acked.
   */
  publish(after: bigint, rows: JournalRow[], pass: PublishPass): Promise<number>;
  /** A heartbeat with a msgID of its own (awaited alone; its ack becomes the chain tip). */
  heartbeat(position: bigint): Promise<void>;
  /** The tip is unknown (after a takeover or a failure): the next publish reads it from the stream first. */
  forgetTip(): void;
}

export interface PublisherOptions {
  /** rows per message at most (the bridge's read batch; default 500) */
  maxEvents?: number;
  /** encoded bytes per message at most (BATCH_MAX_BYTES) */
  maxBytes?: number;
}

/**
 * How far the journal is relayed according to one message of the events stream: a batch holds
 * events up to its last id, a single event (an older bridge) up to its id, a heartbeat up to its
 * position (every event up to it was published before it). Anything else: nothing known.
 */
export function relayedUpTo(names: NatsNames, subject: string, data: Uint8Array): bigint | undefined {
  try {
    if (subject === names.subjects.eventBatch) return BigInt(decode(BusChangeBatch, data).events.at(-1)?.id ?? '0');
    if (subject === names.subjects.eventFor('heartbeat')) return BigInt(decode(BusHeartbeat, data).position);
    return BigInt(decode(BusChangeEvent, data).id);
  } catch {
    return undefined;
  }
}

const utf8 = new TextEncoder();

export function createChainedPublisher(
  deps: { bus: Bus; log: Logger; metrics: Pick<BridgeMetrics, 'relayed' | 'lag'> },
  names: NatsNames,
  opts: PublisherOptions = {},
): ChainedPublisher {
  const { bus, log, metrics: m } = deps;
  const maxBytes = opts.maxBytes ?? BATCH_MAX_BYTES;
  const maxEvents = Math.max(1, opts.maxEvents ?? 500);
  // msgID of the message this bridge last had acked in the events stream; undefined = unknown.
  let tip: string | undefined;
  // Rows up to this id are in the stream already (read with the tip): passed over, never re-sent.
  let heldUpTo = 0n;

  /**
   * The tip from the stream itself: its last message's msgID, and how far that message says the
   * journal is relayed. Only bridges publish there, and a bridge's message is stored only after
   * every row before it, so every row up to `heldUpTo` is in the stream: re-publishing them would
   * put them in twice (a batch re-read from a saved position need not have the same bounds, hence
   * the same msgID, as the one stored, so the duplicate window cannot be relied on).
   */
  async function readTip(): Promise<void> {
    const stream = names.streams.events;
    const last = await withTimeout(
      (async () => {
        const info = await bus.jsm.streams.info(stream);
        if (info.state.messages === 0) return null;
        const sm = await bus.jsm.streams.getMessage(stream, { seq: info.state.last_seq });
        // null: aged out between the two requests; the pass fails and is retried
        if (!sm) throw new Error(`the events stream's last message (seq ${info.state.last_seq}) is gone`);
        return sm;
      })(),
      TAIL_READ_TIMEOUT_MS,
      'reading the events stream tail timed out',
    );
    if (!last) return;
    const upTo = relayedUpTo(names, last.subject, last.data);
    if (upTo !== undefined && upTo > heldUpTo) heldUpTo = upTo;
    // Chained to the tail only when it is an event message (what another bridge relaying the
    // same rows would have stored after it): anything else (a heartbeat, a foreign message) may
    // be followed by more of its kind at any rate, and the first publish goes unchained, alone.
    if (last.subject !== names.subjects.eventFor('heartbeat') && upTo !== undefined) tip = last.header?.get('Nats-Msg-Id') || undefined;
  }

  /**
   * Packs rows into messages of at most maxEvents rows and maxBytes of events. Each event is
   * checked against the contract and serialised once; the batch is assembled from those strings
   * (the byte bound is exact, nothing is serialised twice).
   */
  function pack(after: string, rows: JournalRow[]): Batch[] {
    const out: Batch[] = [];
    let prev = after;
    let cur: JournalRow[] = [];
    let parts: string[] = [];
    // the envelope around the events: `{"prev":"<id>","events":[` + `]}`
    const envelope = () => 23 + prev.length;
    let bytes = envelope();
    const flush = () => {
      if (cur.length === 0) return;
      const msgID = String(cur.at(-1)?.id);
      if (parts.length > 0) {
        const data = utf8.encode(`{"prev":${JSON.stringify(prev)},"events":[${parts.join(',')}]}`);
        out.push({ rows: cur, data, msgID });
        prev = msgID;
      } else {
        // every row of it was passed over (cannot happen with the schema's enums)
        out.push({ rows: cur, data: new Uint8Array(), msgID: '' });
      }
      cur = [];
      parts = [];
      bytes = envelope();
    };
    for (const row of rows) {
      const env = journalRowToEvent(row);
      const json = check(BusChangeEvent, env) ? JSON.stringify({ id: env.id, event: env.event }) : undefined;
      if (json === undefined) {
        // A row that cannot be encoded is logged and passed over rather than blocking every later change.
        log.error({ journalId: row.id }, 'journal row does not match the event contract; not relayed');
        cur.push(row);
        continue;
      }
      const size = Buffer.byteLength(json) + (parts.length > 0 ? 1 : 0);
      if (parts.length > 0 && (parts.length >= maxEvents || bytes + size > maxBytes)) flush();
      cur.push(row);
      parts.push(json);
      bytes += size;
    }
    flush();
    return out;
  }

  /** Sends one batch, chained to `tip` when known; the outcome never rejects. */
  function send(batch: Batch): Promise<PublishOutcome> {
    const expectLast = tip;
    tip = batch.msgID;
    return bus.js
      .publish(names.subjects.eventBatch, batch.data, {
        msgID: batch.msgID,
        timeout: PUBLISH_TIMEOUT_MS,
        ...(expectLast !== undefined ? { expect: { lastMsgID: expectLast } } : {}),
      })
      .then(
        (ack) => ({ ack }),
        (err: unknown) => ({ err }),
      );
  }

  return {
    forgetTip() {
      tip = undefined;
    },
    async heartbeat(position) {
      const hb: BusHeartbeat = { type: 'heartbeat', position: position.toString(), at: new Date().toISOString() };
      // A msgID of its own keeps the chain (a message without one empties the stream's last msgID).
      const msgID = `hb-${randomUUID()}`;
      tip = undefined;
      await bus.js.publish(names.subjects.eventFor('heartbeat'), encode(BusHeartbeat, hb), { msgID, timeout: HEARTBEAT_TIMEOUT_MS });
      tip = msgID;
    },
    async publish(after, rows, pass) {
      if (tip === undefined && rows.length > 0) await readTip();
      // What the stream already holds is settled as it is, never sent again.
      let i = 0;
      while (i < rows.length && BigInt((rows[i] as JournalRow).id) <= heldUpTo) pass.onSettled(rows[i++] as JournalRow);
      const prevOfRest = i > 0 ? String(rows[i - 1]?.id) : after.toString();
      const inflight: InFlight[] = [];
      let acked = 0;
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
        const perTable = new Map<string, number>();
        for (const row of f.batch.rows) {
          pass.onSettled(row);
          perTable.set(row.table_name, (perTable.get(row.table_name) ?? 0) + 1);
        }
        acked += f.batch.rows.length;
        for (const [table, n] of perTable) m.relayed.inc({ table }, n);
        const newest = f.batch.rows.at(-1);
        if (newest) m.lag.observe(Math.max(0, (Date.now() - new Date(newest.changed_at).getTime()) / 1000));
      };
      for (const batch of pack(prevOfRest, rows.slice(i))) {
        if (!pass.keepGoing() || failure) break;
        if (batch.data.length === 0) {
          // nothing relayable in it: settled once everything before it is
          while (inflight.length > 0) await settleHead();
          if (failure) break;
          for (const row of batch.rows) pass.onSettled(row);
          continue;
        }
        if (tip === undefined) {
          // Unchained (an empty stream, or a last message without msgID): safe only with nothing
          // in flight before it, i.e. every earlier row acked.
          while (inflight.length > 0) await settleHead();
          if (failure) break;
          inflight.push({ batch, outcome: send(batch) });
          await settleHead();
          continue;
        }
        inflight.push({ batch, outcome: send(batch) });
        if (inflight.length >= PUBLISH_WINDOW) await settleHead();
      }
      while (inflight.length > 0) await settleHead();
      if (failure) throw failure.err;
      return acked;
    },
  };
}

/**
 * The chained publisher: journal rows onto `<P>_EVENTS`, pipelined (at most PUBLISH_WINDOW in
 * flight) yet never reordered. Every publish but the first of a chain expects the stream's last
 * msgID to be its predecessor's, so once one fails every later one in flight fails too and
 * nothing overtakes the failed row (docs/realtime.md#chained-publishing).
 */
import { randomUUID } from 'node:crypto';
import { JetStreamApiCodes, JetStreamApiError, type PubAck } from '@nats-io/jetstream';
import { BusChangeEvent, BusHeartbeat, encode, type NatsNames } from '@hatch/contracts';
import { journalRowToEvent, type JournalRow } from '@hatch/db';
import type { Logger } from '@hatch/log';
import type { Bus } from '@hatch/bus';
import type { BridgeMetrics } from './metrics.js';

/** Publishes in flight at most (docs/architecture.md, rule 4); each holds one encoded event. */
export const PUBLISH_WINDOW = 256;
export const PUBLISH_TIMEOUT_MS = 5000;
export const HEARTBEAT_TIMEOUT_MS = 3000;
/**
 * JetStream API error code of a failed Nats-Expected-Last-Msg-Id (another publisher got in
 * between); nats.js names the sequence one (JetStreamApiCodes) but not this one.
 */
const WRONG_LAST_MSG_ID = 10070;

/** A failed expectation: expected while two bridges overlap (a takeover), not a fault. */
export function isChainBroken(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === WRONG_LAST_MSG_ID || err.code === JetStreamApiCodes.StreamWrongLastSequence);
}

type PublishOutcome = { ack: PubAck } | { err: unknown } | { skipped: true };

interface InFlight {
  row: JournalRow;
  outcome: Promise<PublishOutcome>;
}

export interface PublishPass {
  /** checked before each row: stop issuing (stopping, or no longer active) */
  keepGoing(): boolean;
  /** each row of the contiguous settled prefix, in order (acked, duplicate, or passed over) */
  onSettled(row: JournalRow): void;
}

export interface ChainedPublisher {
  /**
   * Publishes `rows` (the consecutive journal rows after `after`, the position they were read
   * from) pipelined and chained, each naming its predecessor as `prev`; `onSettled` runs over the
   * contiguous settled prefix. Throws the first failure once everything in flight has settled.
   * Returns how many rows were acked.
   */
  publish(after: bigint, rows: JournalRow[], pass: PublishPass): Promise<number>;
  /** A heartbeat with a msgID of its own (awaited alone; its ack becomes the chain tip). */
  heartbeat(position: bigint): Promise<void>;
  /** The tip is unknown (after a takeover or a failure): the next publish goes unchained, alone. */
  forgetTip(): void;
}

export function createChainedPublisher(
  deps: { bus: Bus; log: Logger; metrics: Pick<BridgeMetrics, 'relayed' | 'lag'> },
  names: NatsNames,
): ChainedPublisher {
  const { bus, log, metrics: m } = deps;
  // msgID of the message this bridge last had acked in the events stream; undefined = unknown.
  let tip: string | undefined;

  /** Sends one row after `prev`, chained to `tip` when known; the outcome never rejects. */
  function send(row: JournalRow, prev: string): Promise<PublishOutcome> {
    let data: Uint8Array;
    const env: BusChangeEvent = { ...journalRowToEvent(row), prev };
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
    return bus.js
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
        pass.onSettled(f.row);
        if ('ack' in o) {
          acked++;
          m.relayed.inc({ table: f.row.table_name });
          m.lag.observe(Math.max(0, (Date.now() - new Date(f.row.changed_at).getTime()) / 1000));
        }
      };
      let prev = after.toString();
      for (const row of rows) {
        if (!pass.keepGoing() || failure) break;
        const predecessor = prev;
        const outcome = () => send(row, predecessor);
        prev = String(row.id);
        if (tip === undefined) {
          // Unchained: safe only with nothing in flight before it, i.e. every earlier row acked.
          while (inflight.length > 0) await settleHead();
          if (failure) break;
          inflight.push({ row, outcome: outcome() });
          await settleHead();
          continue;
        }
        inflight.push({ row, outcome: outcome() });
        if (inflight.length >= PUBLISH_WINDOW) await settleHead();
      }
      while (inflight.length > 0) await settleHead();
      if (failure) throw failure.err;
      return acked;
    },
  };
}

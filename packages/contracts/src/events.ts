/**
 * Change events: what the realtime bridge publishes on `<p>.events.*` (in batches, BusChangeBatch)
 * and what every gateway relays over SSE. `id` is the change-journal id (monotonic), the SSE `id:` field.
 */
import Type, { type Static } from 'typebox';
import { EmailStatusSchema, MessageStatusSchema } from './status.js';
import { UUID_PATTERN } from './identity.js';

const Uuid = Type.String({ pattern: UUID_PATTERN });
const Action = Type.Union([Type.Literal('INSERT'), Type.Literal('UPDATE'), Type.Literal('DELETE')]);
export type ChangeAction = Static<typeof Action>;

export const MessageUpdateEvent = Type.Object({
  type: Type.Literal('message_update'),
  conversation_id: Uuid,
  action: Action,
  message_id: Uuid,
  status: MessageStatusSchema,
  timestamp: Type.String({ format: 'date-time' }),
});
export type MessageUpdateEvent = Static<typeof MessageUpdateEvent>;

export const EmailUpdateEvent = Type.Object({
  type: Type.Literal('email_update'),
  action: Action,
  email_id: Uuid,
  status: EmailStatusSchema,
  timestamp: Type.String({ format: 'date-time' }),
});
export type EmailUpdateEvent = Static<typeof EmailUpdateEvent>;

/**
 * The first event of every stream. `heartbeat_ms`: how often this stream gets a `keepalive`, so a
 * client knows when silence means a stalled stream (stall.ts).
 */
export const ConnectedEvent = Type.Object({
  type: Type.Literal('connected'),
  client_id: Type.String(),
  heartbeat_ms: Type.Optional(Type.Integer({ minimum: 1 })),
});
export type ConnectedEvent = Static<typeof ConnectedEvent>;

/**
 * Sent every heartbeat interval on every stream, with no `id:` (a resume point only ever names
 * a journal id), besides the `:` comments that keep proxies from closing an idle stream: an
 * EventSource cannot see comments, and a client notices a stalled stream by this event's absence.
 */
export const KeepaliveEvent = Type.Object({ type: Type.Literal('keepalive'), timestamp: Type.String({ format: 'date-time' }) });
export type KeepaliveEvent = Static<typeof KeepaliveEvent>;

/** Tells a client its Last-Event-ID cannot be resumed (too old, or not ours): refetch. */
export const ResetEvent = Type.Object({ type: Type.Literal('reset'), reason: Type.String() });
export type ResetEvent = Static<typeof ResetEvent>;

/**
 * The envelope on the bus: journal id (decimal string: bigint-safe) + the event. `prev` is the
 * journal id the bridge relayed just before this one (its position when it read this row): no
 * journal row lies between the two, ever (the bridge only passes a gap once nothing can fill it).
 * A gateway whose last event is older than `prev` missed events on the stream and fills them
 * from the journal (docs/realtime.md#gaps-on-the-stream). Absent from envelopes built for a
 * replay, and from a bridge older than the field.
 */
export const BusChangeEvent = Type.Object({
  id: Type.String({ pattern: '^[0-9]+$' }),
  prev: Type.Optional(Type.String({ pattern: '^[0-9]+$' })),
  event: Type.Union([MessageUpdateEvent, EmailUpdateEvent]),
});
export type BusChangeEvent = Static<typeof BusChangeEvent>;

/**
 * One JetStream message per relayed journal batch, on `<p>.events.batch` (what the bridge
 * publishes: a message per row cost the bridge and NATS over half the CPU of a relayed event,
 * bench/README.md, P3). `events` are consecutive relayed rows in journal order: `prev` is the
 * journal id relayed just before the first, and each later event's predecessor is the event
 * before it (the same promise as BusChangeEvent.prev). Gateways also still take single
 * BusChangeEvent messages (an older bridge during a rolling upgrade): unpackBatch turns a batch
 * into exactly those envelopes (docs/realtime.md#one-message-per-journal-batch).
 */
export const BusChangeBatch = Type.Object({
  prev: Type.String({ pattern: '^[0-9]+$' }),
  events: Type.Array(Type.Object({ id: BusChangeEvent.properties.id, event: BusChangeEvent.properties.event }), { minItems: 1 }),
});
export type BusChangeBatch = Static<typeof BusChangeBatch>;

/**
 * Encoded bytes of one batch message at most (a single event larger than this still goes, alone):
 * far under NATS's 1 MB max_payload, and what a gateway's pull buffer is sized by.
 */
export const BUS_BATCH_MAX_BYTES = 256 * 1024;

/** The events of a batch as single envelopes, in order, each naming its predecessor as `prev`. */
export function unpackBatch(batch: BusChangeBatch): BusChangeEvent[] {
  let prev = batch.prev;
  return batch.events.map((e) => {
    const env: BusChangeEvent = { id: e.id, prev, event: e.event };
    prev = e.id;
    return env;
  });
}

/**
 * The bridge's heartbeat on `<p>.events.heartbeat` every few seconds: proves the path
 * bridge → NATS → gateway is alive, and `position` (every event with id <= position was
 * published before it) lets a gateway know how far the stream is when nothing changes.
 */
export const BusHeartbeat = Type.Object({
  type: Type.Literal('heartbeat'),
  position: Type.String({ pattern: '^[0-9]+$' }),
  at: Type.String({ format: 'date-time' }),
});
export type BusHeartbeat = Static<typeof BusHeartbeat>;

export const SSE_EVENT_NAMES = ['connected', 'message_update', 'email_update', 'keepalive', 'reset'] as const;

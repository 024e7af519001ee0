/**
 * GET /api/events[?conversation_id=][&lastEventId=]: Server-Sent Events (contract "Server-Sent
 * Events", issue 6), through the official @fastify/sse plugin (headers text/event-stream,
 * Cache-Control: no-cache, X-Accel-Buffering: no; heartbeat comments; the `keepalive` events
 * come from the hub, as the `connected` event's heartbeat_ms announces). The plugin's own
 * `send()` awaits each write; frames here go through the hub's bounded, coalescing per-client
 * queue instead, written to the same response.
 *
 * Every answer on this route is 200 (never 5xx): at the connection limit or while the events
 * subscription is not up, the client gets a `retry:` hint and the stream ends. The one
 * exception is a caller past its own cap of streams (HATCH_SSE_MAX_CLIENTS_PER_PRINCIPAL): 429
 * in the contract's error shape with Retry-After, like the rate limiter on the same route: the
 * fault is the caller's, and a 200 + `retry:` would have its EventSource reconnect for ever.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { fastifySSE } from '@fastify/sse';
import Type from 'typebox';
import { ConnectedEvent, EmailUpdateEvent, MessageUpdateEvent, ResetEvent, UUID_PATTERN } from '@hatch/contracts';
import { findJournalAfter, findNewestJournalId, findOldestJournalId, journalRowToEvent, type Db } from '@hatch/db';
import type { Logger } from '@hatch/log';
import { HttpError } from '../errors.js';
import { formatControl, formatEvent, replayHalf, type HubClient } from './client-queue.js';
import type { RealtimeHub } from './hub.js';
import type { Revocations } from '../revocations.js';
import { StreamCredentials, type StreamCredentialOptions } from './stream-credentials.js';

export interface EventsRouteOptions {
  hub: RealtimeHub;
  db: Db;
  log: Logger;
  heartbeatMs: number;
  retryMs: number;
  /** journal rows read per replay batch */
  replayBatch?: number;
  /** how long a new stream waits for the hub to know where the stream is */
  syncTimeoutMs?: number;
  /** a revoked session or token, a disabled user: their streams end at once (issue 18) */
  revocations: Revocations;
  /** an expired session or token: its streams end within STREAM_CHECK_MS (stream-credentials.ts) */
  credentials: Pick<StreamCredentialOptions, 'idleMs' | 'now' | 'everyMs' | 'onEnded'>;
}

const EventsQuery = Type.Object({
  conversation_id: Type.Optional(Type.String({ pattern: UUID_PATTERN })),
  lastEventId: Type.Optional(Type.String({ maxLength: 40 })),
  lastEventID: Type.Optional(Type.String({ maxLength: 40 })),
});

const ID_RE = /^[0-9]{1,19}$/;

/** The stream as the OpenAPI document describes it: one JSON object per event's `data:` line. */
const EVENT_STREAM_DOCS = {
  description:
    'A Server-Sent Events stream (`retry:` first, then events, with `: heartbeat` comments between). Each event is named by its `type` ' +
    '(`connected`, `message_update`, `email_update`, `reset`), its `data:` is one JSON object below, and its `id:` (a decimal journal id) ' +
    'resumes the stream after it (`Last-Event-ID` header, or the `lastEventId` parameter). `reset`: that id cannot be resumed, refetch. ' +
    'At the connection limit, or while the event subscription is not ready, the stream is `retry:` and a comment, then ends.',
  content: { 'text/event-stream': { schema: { oneOf: [ConnectedEvent, MessageUpdateEvent, EmailUpdateEvent, ResetEvent] } } },
};

export async function eventsRoute(app: FastifyInstance, opts: EventsRouteOptions): Promise<void> {
  const { hub } = opts;
  const log = opts.log.child({ component: 'sse' });
  // A replay batch must fit in the client's queue next to the live frames held meanwhile.
  const replayBatch = Math.min(opts.replayBatch ?? 500, replayHalf(hub.clientQueueMax));
  await app.register(fastifySSE, { heartbeatInterval: opts.heartbeatMs });
  const streams = new Map<HubClient, () => void>();
  // The credential behind each stream: revoked or expired, its streams end (stream-credentials.ts).
  // Both are required: no composition can leave a revoked or expired credential's stream open.
  const watched = new StreamCredentials({ db: opts.db, log: opts.log, ...opts.credentials });
  opts.revocations.onRevoked((ev) => watched.revoked(ev));
  watched.start();
  app.addHook('onClose', () => watched.stop());

  // Shutdown: end every stream so clients reconnect to another replica (with Last-Event-ID).
  app.addHook('preClose', async () => {
    hub.closeAll((c) => streams.get(c)?.());
  });

  app.withTypeProvider<TypeBoxTypeProvider>().get(
    '/events',
    // No HEAD twin: a HEAD stream sends nothing (Node withholds a HEAD answer's head until it
    // ends, and a stream never ends), so it hung holding a hub client (found by test/fuzz.test.ts).
    {
      sse: 'only',
      exposeHeadRoute: false,
      schema: {
        tags: ['events'],
        operationId: 'events',
        summary: 'Changes to messages and emails, as Server-Sent Events',
        querystring: EventsQuery,
      },
      config: { openapi: { errors: ['NOT_ACCEPTABLE'], responses: { 200: EVENT_STREAM_DOCS } } },
    },
    async (req, reply) => {
      const q = req.query;
      const headerId = req.headers['last-event-id'];
      const lastEventId = (Array.isArray(headerId) ? headerId[0] : headerId) ?? q.lastEventId ?? q.lastEventID;
      const refuse = (reason: string) => {
        hub.metrics.rejected.inc({ reason });
        reply.sse.sendHeaders(200);
        reply.raw.write(`retry: ${opts.retryMs}\n: ${reason}\n\n`);
      };
      if (!(await hub.waitSynced(opts.syncTimeoutMs ?? 5000))) return refuse('events subscription not ready');
      if (hub.closing) {
        // the connection too: a keep-alive one would hold the draining gateway open
        refuse('shutting down');
        reply.raw.end();
        reply.raw.socket?.end();
        return;
      }
      // Decided in the same tick as register() below: no await in between, so concurrent
      // requests cannot all pass the check. Thrown before any SSE byte: the error handler answers.
      const principal = req.principal ?? req.ip;
      if (hub.principalFull(principal)) {
        hub.metrics.rejected.inc({ reason: 'principal_limit' });
        const retryAfter = Math.ceil(opts.retryMs / 1000);
        throw new HttpError(
          'RATE_LIMITED',
          `too many event streams for this credential (at most ${hub.maxClientsPerPrincipal} at once on this gateway); close one, or retry in ${retryAfter} s`,
          {
            headers: { 'retry-after': String(retryAfter) },
          },
        );
      }
      // Cut for slowness: the connection itself is closed, not just the response. Ended, a
      // keep-alive connection would stay open with the unread frames still buffered for it, and a
      // client that waits for the connection to close before resuming would never resume. Every
      // frame the client did not read is replayed from its Last-Event-ID.
      const client = hub.register(
        reply.raw,
        q.conversation_id,
        () => {
          endStream();
          reply.raw.destroy();
        },
        principal,
      );
      if (!client) return refuse('too many connections');
      reply.sse.keepAlive();
      let ended = false;
      const endStream = () => {
        if (ended) return;
        ended = true;
        client.close();
        streams.delete(client);
        watched.remove(client);
        reply.sse.close();
      };
      streams.set(client, endStream);
      const caller = req.caller;
      if (caller) watched.add(client, caller.credential, caller.userId, endStream);
      reply.sse.onClose(() => {
        client.close();
        streams.delete(client);
        watched.remove(client);
      });
      reply.sse.sendHeaders(200);
      // The hub's position now: everything up to it is history (replayed), everything after is live.
      const seam = hub.lastId;
      const connected: ConnectedEvent = { type: 'connected', client_id: client.id, heartbeat_ms: opts.heartbeatMs };
      const reset = (reason: string) => {
        hub.metrics.resets.inc({ reason });
        const data: ResetEvent = { type: 'reset', reason };
        client.enqueue(formatControl('reset', data, seam.toString()));
        client.goLive();
      };
      client.enqueue(`retry: ${opts.retryMs}\n\n`);
      if (lastEventId === undefined) {
        // id = the seam: a reconnect from here resumes exactly after it.
        client.enqueue(formatControl('connected', connected, seam.toString()));
        client.goLive();
        return;
      }
      client.enqueue(formatControl('connected', connected));
      if (!ID_RE.test(lastEventId)) return reset('unknown_id');
      const from = BigInt(lastEventId);
      client.skipUpTo = from;
      // Another replica may be a few ms ahead: wait briefly before calling the id unknown.
      if (from > seam && !(await hub.waitForId(from, 2000))) {
        // An id the journal holds is ours: this replica lags behind the bridge (its subscription
        // is catching up, e.g. after losing a NATS node; seen in the soak). A reset would make the
        // client drop what it has and refetch; ending the stream makes it retry after `retry:`
        // with the same id, here or on another replica, and lose nothing. An id past the journal
        // is not one of ours: reset. When the lookup fails, the client retries too.
        const newest = await findNewestJournalId(opts.db.db).then(
          (id) => id,
          () => null,
        );
        if (newest === undefined || (newest !== null && BigInt(newest) < from)) return reset('unknown_id');
        hub.metrics.laggingResumes.inc();
        log.debug({ lastEventId, position: seam.toString() }, "resume past this replica's position; ending the stream for a retry");
        endStream();
        return;
      }
      try {
        if (from < seam) {
          const oldest = await findOldestJournalId(opts.db.db);
          // Rows after the client's id were deleted by retention: it cannot be resumed exactly.
          if (oldest === undefined || BigInt(oldest) > from + 1n) return reset('too_old');
          hub.metrics.replays.inc();
        }
        // Up to the seam, or further when live frames held meanwhile had to be dropped (the
        // client's replayUpTo): checked again after every batch, and the switch to live happens
        // in the same tick as the last check, so no frame can slip between the two.
        let cursor = from;
        for (;;) {
          if (client.closed) return;
          const target = client.replayUpTo > seam ? client.replayUpTo : seam;
          if (cursor >= target) break;
          const rows = await findJournalAfter(opts.db.db, cursor.toString(), replayBatch, target.toString());
          for (const row of rows) {
            const frame = formatEvent(journalRowToEvent(row));
            if (client.conversationId === undefined || frame.conversationId === client.conversationId)
              client.enqueue(frame.text, frame.bytes);
          }
          // A short batch reached the target (every id up to it was relayed, so committed or never will be).
          cursor = rows.length < replayBatch ? target : BigInt(rows[rows.length - 1]?.id ?? target.toString());
          await client.drained(); // one batch in memory at a time
        }
        client.skipUpTo = cursor;
        client.goLive();
      } catch (err) {
        // Headers are sent: no error status. End the stream; the client retries with its id.
        log.warn({ err: { message: (err as Error).message }, lastEventId }, 'replay failed; ending the stream');
        endStream();
      }
    },
  );
}

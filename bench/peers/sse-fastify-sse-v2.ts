/**
 * P4 peer: `fastify-sse-v2` on Fastify 5 broadcasting the same change events to the same
 * clients, as its README shows for events from an EventEmitter: each request gets
 * `reply.sse(asyncIterable)` fed by `events.on(emitter, ...)`, ended when the client goes away.
 *
 * Env: BENCH_PEER_PORT, NATS_URL, BENCH_SUBJECT, BENCH_BATCH_SUBJECT. Prints {"bench":{"type":"ready"}}.
 */
import { EventEmitter, on } from 'node:events';
import Fastify from 'fastify';
import { FastifySSEPlugin } from 'fastify-sse-v2';
import { readyAndStopOnTerm, subscribeEvents, type FeedEvent } from '../lib/events-feed.js';

const emitter = new EventEmitter();
emitter.setMaxListeners(0);
const app = Fastify({ logger: false });
await app.register(FastifySSEPlugin);

// (typed by hand: the workspace's other SSE plugin, @fastify/sse, declares `reply.sse` too)
type SseReply = { sse(source: AsyncIterable<{ id?: string; event?: string; data?: string }>): void };

app.get('/api/events', (req, reply) => {
  const ac = new AbortController();
  req.socket.on('close', () => ac.abort());
  (reply as unknown as SseReply).sse(
    (async function* () {
      try {
        for await (const [e] of on(emitter, 'event', { signal: ac.signal }) as AsyncIterableIterator<[FeedEvent]>) {
          yield { id: e.id, event: e.type, data: JSON.stringify(e.event) };
        }
      } catch {
        /* aborted: the client went away */
      }
    })(),
  );
});

const nc = await subscribeEvents('bench-fastify-sse-v2', (e) => emitter.emit('event', e));
await app.listen({ host: '127.0.0.1', port: Number(process.env.BENCH_PEER_PORT) });
app.server.keepAliveTimeout = 0;
readyAndStopOnTerm(nc, () => app.server.closeAllConnections());

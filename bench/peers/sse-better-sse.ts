/**
 * P4 peer: `better-sse` broadcasting the same change events to the same clients, as its docs
 * show: a session per request (`createSession(req, res)`) registered on one channel, each event
 * sent with `channel.broadcast(data, eventName, { eventId })` (data JSON-serialised by the
 * library). On node:http, which better-sse supports directly.
 *
 * Env: BENCH_PEER_PORT, NATS_URL, BENCH_SUBJECT, BENCH_BATCH_SUBJECT. Prints {"bench":{"type":"ready"}}.
 */
import http from 'node:http';
import { createChannel, createSession } from 'better-sse';
import { readyAndStopOnTerm, subscribeEvents } from '../lib/events-feed.js';

const channel = createChannel();
const server = http.createServer((req, res) => {
  if (!req.url?.startsWith('/api/events')) {
    res.writeHead(404).end();
    return;
  }
  void createSession(req, res).then((session) => channel.register(session));
});
server.keepAliveTimeout = 0;
server.maxConnections = 100_000;

const nc = await subscribeEvents('bench-better-sse', (e) => channel.broadcast(e.event, e.type, { eventId: e.id }));
server.listen(Number(process.env.BENCH_PEER_PORT), '127.0.0.1', () => readyAndStopOnTerm(nc, () => server.closeAllConnections()));

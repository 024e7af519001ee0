/**
 * The raw limit of P4: a bare node:http server that receives the same change events as the
 * gateways (core NATS subscriptions on `<p>.events.messages` and `<p>.events.batch`, which see every chat event the
 * bridge publishes into the events stream) and writes the same SSE frames to the same clients,
 * with the same per-client coalescing (one write per client per tick) and a bound (a client
 * with more than 1 MiB unwritten is cut). No Fastify, no @fastify/sse, no JetStream consumer, no
 * schema decode, no metrics: what is left is Node's own cost of the fan-out.
 *
 * Env: BENCH_BARE_PORT, NATS_URL, BENCH_SUBJECT, BENCH_BATCH_SUBJECT. Prints {"bench":{"type":"ready"}}.
 */
import http from 'node:http';
import { openSse, readyAndStopOnTerm, subscribeEvents } from './events-feed.js';

const port = Number(process.env.BENCH_BARE_PORT);
const MAX_PENDING = 1 << 20;

interface Client {
  res: http.ServerResponse;
  queue: string[];
  scheduled: boolean;
}
const clients = new Set<Client>();

function flush(c: Client): void {
  c.scheduled = false;
  if (c.queue.length === 0) return;
  const chunk = c.queue.length === 1 ? (c.queue[0] as string) : c.queue.join('');
  c.queue = [];
  c.res.write(chunk);
}

function deliver(text: string): void {
  for (const c of clients) {
    if (c.res.writableLength > MAX_PENDING) {
      clients.delete(c);
      c.res.destroy();
      continue;
    }
    c.queue.push(text);
    if (!c.scheduled) {
      c.scheduled = true;
      setImmediate(flush, c);
    }
  }
}

const server = http.createServer((req, res) => {
  if (!openSse(req, res)) return;
  const c: Client = { res, queue: [], scheduled: false };
  clients.add(c);
  res.on('close', () => clients.delete(c));
});
server.keepAliveTimeout = 0;
server.maxConnections = 100_000;

const nc = await subscribeEvents('bench-bare-sse', (e) => deliver(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e.event)}\n\n`));
server.listen(port, '127.0.0.1', () =>
  readyAndStopOnTerm(nc, () => {
    for (const c of clients) c.res.destroy();
  }),
);

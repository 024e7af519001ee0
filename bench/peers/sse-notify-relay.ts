/**
 * P3 peer: the like-for-like baseline of Hatch's relay. A LISTEN client on the per-row NOTIFY
 * channel of `bench_raw_notify` (bench/lib/infra.ts) relays each notification, as it comes, as
 * one SSE frame to every connected client of a node:http server: what an application without a
 * journal, a broker or a gateway would write to relay row changes to browsers. With `postgres`
 * (the workspace's client) as its docs show: `sql.listen(channel, onNotify)` on a dedicated
 * connection, which it reconnects and re-LISTENs by itself. No replay (a notification sent while
 * the listener is away is lost), no auth, no per-client bound beyond the one Node gives.
 *
 * Env: BENCH_PEER_PORT, DATABASE_URL. Prints {"bench":{"type":"ready"}}.
 */
import http from 'node:http';
import postgres from 'postgres';
import { openSse } from '../lib/events-feed.js';

const clients = new Set<http.ServerResponse>();
let seq = 0;

const server = http.createServer((req, res) => {
  if (!openSse(req, res)) return;
  clients.add(res);
  res.on('close', () => clients.delete(res));
});
server.keepAliveTimeout = 0;

const sql = postgres(process.env.DATABASE_URL ?? '', {
  max: 1,
  onnotice: () => {},
  connection: { application_name: 'bench-notify-relay' },
});
await sql.listen('bench_raw_changes', (payload) => {
  const frame = `id: ${++seq}\nevent: row_change\ndata: ${payload}\n\n`;
  for (const res of clients) res.write(frame);
});

server.listen(Number(process.env.BENCH_PEER_PORT), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ bench: { type: 'ready' } })}\n`);
});
process.on('SIGTERM', () => {
  for (const res of clients) res.destroy();
  server.close();
  void sql.end({ timeout: 2 }).finally(() => process.exit(0));
});

/**
 * SSE load client (a child process of the bench): opens many SSE connections over raw TCP with a
 * hand-written HTTP/1.1 request (no EventSource, no HTTP parser: the byte stream is scanned), and
 * counts `message_update` events (`event: message_update` or `event:message_update`; another name with
 * BENCH_SSE_EVENT, e.g. P3's LISTEN relay's `row_change`); with BENCH_LATENCY=1 it also records, per event, receive time
 * minus the event's `timestamp` (the change time inside PostgreSQL, same machine clock) into a
 * bounded histogram.
 *
 * Settings (env): BENCH_SSE_PORT, BENCH_SSE_PATH, BENCH_SSE_TOKEN, BENCH_SSE_N,
 * BENCH_SSE_LOCAL_ADDRS (comma list of 127.x source addresses, spreads ports past ~28k),
 * BENCH_LATENCY. Protocol: prints {"bench": {...}} lines: `connected` once all are open,
 * then on SIGUSR1 resets its counters (start of a window), on SIGUSR2 prints the window's stats.
 */
import net from 'node:net';
import { Histogram } from './report.js';
import { frameId, nextEventLine } from './sse-scan.js';

const PORT = Number(process.env.BENCH_SSE_PORT);
const PATH = process.env.BENCH_SSE_PATH ?? '/api/events';
const TOKEN = process.env.BENCH_SSE_TOKEN ?? '';
const N = Number(process.env.BENCH_SSE_N ?? 100);
const ADDRS = (process.env.BENCH_SSE_LOCAL_ADDRS ?? '127.0.0.1').split(',');
const LATENCY = process.env.BENCH_LATENCY === '1';
const CONNECT_DEADLINE_MS = Number(process.env.BENCH_SSE_CONNECT_MS ?? 120_000);
/**
 * BENCH_SSE_RESUME=1: like EventSource, a stream the server ends (a client cut off as too slow)
 * is reopened with Last-Event-ID, and only events with a higher id are counted (no double count).
 */
const RESUME = process.env.BENCH_SSE_RESUME === '1';

const say = (m: unknown) => process.stdout.write(`${JSON.stringify({ bench: m })}\n`);
// A client never outlives the bench for long (the parent kills its group; this is the backstop).
setTimeout(() => process.exit(3), Number(process.env.BENCH_SSE_LIFETIME_MS ?? 900_000)).unref();

let events = 0;
let bytes = 0;
let hist = new Histogram();
let open = 0;
let closed = 0;
let errors = 0;
let resumes = 0;
let stopping = false;
let windowStart = performance.now();
const sockets: net.Socket[] = [];
const EVENT = process.env.BENCH_SSE_EVENT ?? 'message_update';
const TS = '"timestamp":"';
const request = (lastId?: string) =>
  `GET ${PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n${TOKEN ? `Authorization: Bearer ${TOKEN}\r\n` : ''}` +
  `${lastId ? `Last-Event-ID: ${lastId}\r\n` : ''}\r\n`;

interface Conn {
  /** highest event id seen (RESUME only) */
  lastId: bigint;
}

function scan(text: string, now: number, conn: Conn): void {
  let i = nextEventLine(text, EVENT);
  while (i !== -1) {
    const next = nextEventLine(text, EVENT, i + 1);
    if (RESUME) {
      const raw = frameId(text, i) ?? '';
      const id = /^[0-9]{1,19}$/.test(raw) ? BigInt(raw) : conn.lastId + 1n;
      if (id <= conn.lastId) {
        i = next;
        continue;
      }
      conn.lastId = id;
    }
    events++;
    if (LATENCY) {
      const t = text.indexOf(TS, i);
      if (t !== -1) {
        const ts = Date.parse(text.slice(t + TS.length, text.indexOf('"', t + TS.length)));
        if (Number.isFinite(ts)) hist.record(now - ts);
      }
    }
    i = next;
  }
}

function connectOne(k: number, conn: Conn = { lastId: -1n }): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: PORT, localAddress: ADDRS[k % ADDRS.length] });
    let ok = false;
    let buf = '';
    // A connection the server never answers (listen backlog full under a connect storm) counts as
    // failed after a bound instead of holding up the whole batch.
    const timer = setTimeout(() => {
      if (ok) return;
      errors++;
      s.destroy();
      resolve(false);
    }, 15_000);
    s.setEncoding('latin1');
    s.setNoDelay(true);
    s.on('connect', () => s.write(request(conn.lastId >= 0n ? conn.lastId.toString() : undefined)));
    s.on('data', (chunk: string) => {
      const now = performance.timeOrigin + performance.now();
      bytes += chunk.length;
      if (!ok) {
        buf += chunk;
        if (buf.length < 12) return;
        ok = buf.startsWith('HTTP/1.1 200');
        if (!ok) {
          errors++;
          s.destroy();
          return resolve(false);
        }
        open++;
        clearTimeout(timer);
        resolve(true);
        chunk = buf;
        buf = '';
      }
      buf += chunk;
      const cut = buf.lastIndexOf('\n\n');
      if (cut === -1) {
        if (buf.length > 1 << 20) buf = ''; // bounded: never seen, but never grows either
        return;
      }
      scan(buf.slice(0, cut), now, conn);
      buf = buf.slice(cut + 2);
    });
    s.on('error', () => {
      errors++;
      if (!ok) resolve(false);
    });
    s.on('close', () => {
      const i = sockets.indexOf(s);
      if (i >= 0) sockets.splice(i, 1);
      if (ok) {
        open--;
        closed++;
        if (RESUME && !stopping) {
          resumes++;
          setTimeout(() => void connectOne(k, conn), 100);
        }
      }
    });
    sockets.push(s);
  });
}

async function main(): Promise<void> {
  const t0 = performance.now();
  let connected = 0;
  const BATCH = 250;
  for (let i = 0; i < N && performance.now() - t0 < CONNECT_DEADLINE_MS; i += BATCH) {
    const rs = await Promise.all(Array.from({ length: Math.min(BATCH, N - i) }, (_, j) => connectOne(i + j)));
    connected += rs.filter(Boolean).length;
  }
  say({ type: 'connected', connected, errors, seconds: (performance.now() - t0) / 1000 });
}

process.on('SIGUSR1', () => {
  events = 0;
  bytes = 0;
  hist = new Histogram();
  windowStart = performance.now();
});
process.on('SIGUSR2', () => {
  const seconds = (performance.now() - windowStart) / 1000;
  say({ type: 'window', events, bytes, seconds, open, closed, errors, resumes, hist: LATENCY ? hist.toJSON() : undefined });
});
process.on('SIGTERM', () => {
  stopping = true;
  for (const s of sockets) s.destroy();
  process.exit(0);
});

process.on('uncaughtException', (err) => {
  console.error('sse-client crashed:', err);
  process.exit(1);
});

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

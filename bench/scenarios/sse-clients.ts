/**
 * The SSE side of P3–P6: client processes (bench/lib/sse-client.ts) opened, signalled and read
 * for their window counts, and the chat-row writers whose journal rows become the events.
 */
import type postgres from 'postgres';
import { Histogram } from '../lib/report.js';
import { sleep, spawnTs, waitUntil, type Proc } from '../lib/procs.js';
import { TOKEN } from '../lib/stack.js';

export interface WindowStats {
  events: number;
  bytes: number;
  seconds: number;
  open: number;
  closed: number;
  errors: number;
  resumes?: number;
  hist?: { buckets: Array<[number, number]>; count: number; max: number };
}

export async function openClients(
  port: number,
  total: number,
  perProcess: number,
  opts: { latency?: boolean; resume?: boolean; token?: string; addrs?: string[]; connectMs?: number; event?: string } = {},
): Promise<{ procs: Proc[]; connected: number; seconds: number }> {
  const procs: Proc[] = [];
  const nProc = Math.max(1, Math.ceil(total / perProcess));
  for (let k = 0; k < nProc; k++) {
    const n = Math.min(perProcess, total - k * perProcess);
    procs.push(
      spawnTs(`sse-client-${k}`, 'bench/lib/sse-client.ts', [], {
        nofile: n + 1000,
        env: {
          BENCH_SSE_PORT: String(port),
          BENCH_SSE_TOKEN: opts.token ?? TOKEN,
          BENCH_SSE_N: String(n),
          BENCH_LATENCY: opts.latency ? '1' : '0',
          BENCH_SSE_RESUME: opts.resume ? '1' : '0',
          BENCH_SSE_LOCAL_ADDRS: (opts.addrs ?? ['127.0.0.1']).join(','),
          BENCH_SSE_CONNECT_MS: String(opts.connectMs ?? 60_000),
          ...(opts.event ? { BENCH_SSE_EVENT: opts.event } : {}),
        },
      }),
    );
  }
  const t0 = performance.now();
  const msgs = (await Promise.all(procs.map((p) => p.nextMessage((opts.connectMs ?? 60_000) + 30_000)))) as Array<{ connected: number }>;
  return { procs, connected: msgs.reduce((a, m) => a + m.connected, 0), seconds: (performance.now() - t0) / 1000 };
}

export function signalAll(procs: Proc[], sig: NodeJS.Signals): void {
  for (const p of procs) process.kill(p.pid, sig);
}

export async function windowStats(procs: Proc[]): Promise<WindowStats> {
  signalAll(procs, 'SIGUSR2');
  const ws = (await Promise.all(procs.map((p) => p.nextMessage(20_000)))) as WindowStats[];
  const hist = new Histogram();
  for (const w of ws) if (w.hist) hist.merge(w.hist);
  return {
    events: ws.reduce((a, w) => a + w.events, 0),
    bytes: ws.reduce((a, w) => a + w.bytes, 0),
    seconds: Math.max(...ws.map((w) => w.seconds)),
    open: ws.reduce((a, w) => a + w.open, 0),
    closed: ws.reduce((a, w) => a + w.closed, 0),
    errors: ws.reduce((a, w) => a + w.errors, 0),
    resumes: ws.reduce((a, w) => a + (w.resumes ?? 0), 0),
    hist: hist.toJSON(),
  };
}

/**
 * Polls the clients until they have received `expected` events in the window (bounded: 30 s).
 * `tDone` is when they had (0 when they never did).
 */
export async function awaitEvents(procs: Proc[], expected: number, what: string): Promise<{ got: number; resumes: number; tDone: number }> {
  let got = 0;
  let resumes = 0;
  let tDone = 0;
  await waitUntil(
    async () => {
      const st = await windowStats(procs);
      got = st.events;
      resumes = st.resumes ?? 0;
      if (got >= expected) tDone = performance.now();
      return got >= expected;
    },
    30_000,
    what,
    250,
  ).catch(() => undefined);
  return { got, resumes, tDone };
}

export const clientPids = (procs: Proc[]) => () => procs.map((p) => p.pid);

/** Inserts chat rows (journal trigger → bridge → NATS → SSE) in `rowsPerTx`-row statements. */
export async function insertRows(sql: postgres.Sql, conversationId: string, rows: number): Promise<void> {
  await sql`
    INSERT INTO messages (id, conversation_id, from_contact, to_contact, body, channel, direction, status)
    SELECT gen_random_uuid(), ${conversationId}, 'me', 'bench', 'bench event', 'chat', 'outbound', 'stored'
    FROM generate_series(1, ${rows}::int)`;
}

/** Paced writer: `batches` per second of `rowsPerTx` rows each, for `seconds`. */
export async function pacedWriter(
  sql: postgres.Sql,
  conversationId: string,
  perSecond: number,
  rowsPerTx: number,
  seconds: number,
): Promise<number> {
  const t0 = performance.now();
  const total = Math.round(perSecond * seconds);
  let n = 0;
  while (n < total) {
    await insertRows(sql, conversationId, rowsPerTx);
    n++;
    const due = t0 + (n * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
  }
  return n * rowsPerTx;
}

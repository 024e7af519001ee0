/**
 * P3 (change events/s relayed DB → NATS → SSE, and CPU per event, against per-row NOTIFY and a
 * LISTEN → SSE relay), P4 (SSE deliveries/s per core and CPU per delivery at the saturation point,
 * against a bare node:http server, better-sse and fastify-sse-v2), P5 (idle SSE connections and
 * RSS of a fresh gateway), P6 (commit → SSE client latency, at 100 events/s and at the gateway's
 * saturation point).
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { natsNames } from '@hatch/contracts';
import { cpuMsPerUnit, fmt, Histogram, summarize, type Row } from '../lib/report.js';
import { cpuWindow, rssBytes, sleep, spawnTs, waitUntil, type CpuWindow, type Proc, type Watched } from '../lib/procs.js';
import {
  classifyStep,
  describeStop,
  isServerLimit,
  perCore,
  reportedStep,
  saturationSearch,
  type SearchResult,
  type Step,
  type StepReading,
} from '../lib/saturation.js';
import { subscribeEvents } from '../lib/events-feed.js';
import { analyzeAfterWarmUp, NATS_URL, notifyRowsScript, pgbenchAvailable, pgbenchScript } from '../lib/infra.js';
import { freePort, startService } from '../lib/stack.js';
import { cpuNote, cpuSummary, perUnitNote, pgPidsOf, watched, type Ctx, type ScenarioResult } from './context.js';
import { awaitEvents, clientPids, insertRows, openClients, pacedWriter, signalAll, windowStats, type WindowStats } from './sse-clients.js';

/* ------------------------------------------------------------------------------------------ */
/* P3: change events/s relayed DB → NATS → SSE                                                */
/* ------------------------------------------------------------------------------------------ */

/** pgbench into the per-row-NOTIFY table, `rows` per transaction, with its backends' CPU per row. */
async function notifyBaseline(c: Ctx, rows: number, clients: number) {
  const w = cpuWindow({ postgres: pgPidsOf(c, c.dbName, 'pgbench') }, { sampleMs: 100 });
  const tps = await pgbenchScript(c.env.dbUrl, notifyRowsScript(rows), clients, c.seconds);
  const win = w.end();
  const perS = tps * rows;
  return { rowsPerS: perS, cpuMsPerRow: cpuMsPerUnit(win.cpu, ['postgres'], win.seconds, perS * win.seconds) };
}

/**
 * The like-for-like baseline: pgbench into the per-row-NOTIFY table, `rows` per transaction,
 * while the LISTEN relay (bench/peers/sse-notify-relay.ts) writes each notification to an SSE
 * client. Rate = events received ÷ (pgbench start → the last one received); CPU = the pgbench
 * backends, the relay's LISTEN backend and the relay process (the SSE client is not counted, as
 * in Hatch's figure).
 */
async function relayBaseline(c: Ctx, rows: number, clients: number, relay: Proc, client: Proc[]) {
  const count = async () => Number((await c.probe`SELECT count(*)::int AS n FROM bench_raw_notify`)[0]?.n ?? 0);
  const before = await count();
  const pg = [pgPidsOf(c, c.dbName, 'pgbench'), pgPidsOf(c, c.dbName, 'bench-notify-relay')];
  signalAll(client, 'SIGUSR1');
  const w = cpuWindow({ postgres: () => pg.flatMap((f) => f()), 'notify-relay': relay.pid }, { sampleMs: 100 });
  const t0 = performance.now();
  await pgbenchScript(c.env.dbUrl, notifyRowsScript(rows), clients, c.seconds);
  const inserted = (await count()) - before;
  const { got, tDone } = await awaitEvents(client, inserted, 'every notification relayed to the SSE client');
  const win = w.end();
  const seconds = ((tDone || performance.now()) - t0) / 1000;
  return {
    rowsPerS: got / seconds,
    cpuMsPerRow: cpuMsPerUnit(win.cpu, ['postgres', 'notify-relay'], win.seconds, got),
    inserted,
    received: got,
    complete: tDone > 0,
    cpuPct: win.cpu,
  };
}

/** CPU of a relayed event: PostgreSQL (writers' inserts, journal, reads), the bridge, NATS, the gateway. */
const P3_CPU = ['postgres (bench db backends)', 'realtime-bridge', 'nats-server', 'gateway'];

export async function p3(c: Ctx): Promise<ScenarioResult> {
  const rate: number[] = [];
  const cpuPerEvent: number[] = [];
  const received: number[] = [];
  const same: Array<{ rowsPerS: number; cpuMsPerRow: number }> = [];
  const one: Array<{ rowsPerS: number; cpuMsPerRow: number }> = [];
  const relayed: Array<Awaited<ReturnType<typeof relayBaseline>>> = [];
  const windows: CpuWindow[] = [];
  const runs: unknown[] = [];
  const WRITERS = 8;
  const ROWS = 20;
  if (!pgbenchAvailable()) throw new Error('P3 needs pgbench (its per-row NOTIFY baselines)');
  // One client that resumes with Last-Event-ID when the gateway cuts it as too slow (contract).
  const { procs } = await openClients(c.env.ports.gateway, 1, 1, { resume: true });
  // The LISTEN → SSE relay and its one SSE client, for the like-for-like baseline.
  const relayPort = await freePort();
  const relay = spawnTs('notify-relay', 'bench/peers/sse-notify-relay.ts', [], {
    env: { BENCH_PEER_PORT: String(relayPort), DATABASE_URL: c.env.dbUrl, NODE_ENV: 'production' },
  });
  const relayClient: Proc[] = [];
  try {
    await relay.nextMessage(30_000);
    relayClient.push(...(await openClients(relayPort, 1, 1, { event: 'row_change' })).procs);
    for (let i = 0; i < c.runs; i++) {
      // Baselines: per-row NOTIFY (a trigger per row) at the same rows per transaction and
      // writers as Hatch's below, and at one row per transaction (what API sends would be
      // without group commit). No listener: the notifications are queued, not delivered.
      same.push(await notifyBaseline(c, ROWS, WRITERS));
      one.push(await notifyBaseline(c, 1, WRITERS));
      relayed.push(await relayBaseline(c, ROWS, WRITERS, relay, relayClient));
      signalAll(procs, 'SIGUSR1');
      const w = cpuWindow(watched(c, { 'sse-client': clientPids(procs) }));
      const t0 = performance.now();
      const end = t0 + c.seconds * 1000;
      let inserted = 0;
      await Promise.all(
        Array.from({ length: WRITERS }, async () => {
          while (performance.now() < end) {
            await insertRows(c.sql, c.conversationId, ROWS);
            inserted += ROWS;
          }
        }),
      );
      const writeSeconds = (performance.now() - t0) / 1000;
      const { got, resumes, tDone } = await awaitEvents(procs, inserted, 'every change event at the SSE client');
      const win = w.end();
      windows.push(win);
      const seconds = ((tDone || performance.now()) - t0) / 1000;
      rate.push(got / seconds);
      received.push(got);
      const cpe = cpuMsPerUnit(win.cpu, P3_CPU, win.seconds, got);
      cpuPerEvent.push(cpe);
      runs.push({
        perRowNotifySameTx: same.at(-1),
        perRowNotifyOneRowTx: one.at(-1),
        listenRelaySameTx: relayed.at(-1),
        inserted,
        writeRate: inserted / writeSeconds,
        received: got,
        resumes,
        seconds,
        cpuMsPerEvent: cpe,
        complete: tDone > 0,
      });
      c.log(
        `P3 run ${i + 1}: per-row NOTIFY ${same.at(-1)?.rowsPerS.toFixed(0)} rows/s at ${ROWS} rows/tx, ${one.at(-1)?.rowsPerS.toFixed(0)} at 1 row/tx; ` +
          `LISTEN → SSE relay ${relayed.at(-1)?.rowsPerS.toFixed(0)} events/s at ${ROWS} rows/tx (${relayed.at(-1)?.received}/${relayed.at(-1)?.inserted}, ${relayed.at(-1)?.cpuMsPerRow.toFixed(3)} CPU ms/event); ` +
          `Hatch wrote ${inserted} rows at ${(inserted / writeSeconds).toFixed(0)}/s, relayed ${got} in ${seconds.toFixed(1)} s → ${(got / seconds).toFixed(0)}/s, ${cpe.toFixed(3)} CPU ms/event (client resumed ${resumes}×)`,
      );
    }
  } finally {
    await Promise.all([...procs, ...relayClient, relay].map((p) => p.stop()));
  }
  const cpu = cpuSummary(windows);
  const hatchCpu = { unit: 'ms/event', value: summarize(cpuPerEvent), of: 'PostgreSQL + bridge + NATS + gateway' };
  const base = (b: typeof same, label: string) => ({
    label,
    value: summarize(b.map((x) => x.rowsPerS)),
    cpu: { unit: 'ms/event', value: summarize(b.map((x) => x.cpuMsPerRow)), of: 'PostgreSQL' },
  });
  const measure = `change events/s relayed DB → NATS → SSE client (${WRITERS} writers, ${ROWS}-row transactions)`;
  return {
    rows: [
      {
        scenario: 'P3',
        measure,
        unit: '/s',
        value: summarize(rate),
        cpu: hatchCpu,
        raw: base(same, `pgbench INSERT + per-row pg_notify trigger, ${ROWS} rows/tx, ${WRITERS} clients (rows/s)`),
        goal: { text: '≥ 2× per-row NOTIFY at the same tx size', on: 'ratio', direction: 'atLeast', threshold: 2 },
        note: `${perUnitNote(windows, received, P3_CPU, 'ms/event')}. bottleneck ${cpu.bottleneck}. ${cpuNote(cpu)}`,
      },
      {
        scenario: 'P3',
        measure: 'the same, against per-row NOTIFY at one row per transaction',
        unit: '/s',
        value: summarize(rate),
        cpu: hatchCpu,
        raw: base(one, `pgbench INSERT + per-row pg_notify trigger, 1 row/tx, ${WRITERS} clients (rows/s)`),
      },
      {
        scenario: 'P3',
        measure: 'the same, against a LISTEN client relaying per-row NOTIFY to an SSE client (like for like)',
        unit: '/s',
        value: summarize(rate),
        cpu: hatchCpu,
        raw: {
          label: `pgbench INSERT + per-row pg_notify, ${ROWS} rows/tx, ${WRITERS} clients, each notification relayed by a LISTEN client (node:http) to an SSE client (events/s)`,
          value: summarize(relayed.map((x) => x.rowsPerS)),
          cpu: { unit: 'ms/event', value: summarize(relayed.map((x) => x.cpuMsPerRow)), of: 'PostgreSQL + relay' },
        },
        note: `relay CPU % (median of runs): ${['postgres', 'notify-relay']
          .map((n) => `${n} ${fmt(summarize(relayed.map((x) => x.cpuPct[n] ?? Number.NaN)).median)}`)
          .join(', ')}; every notification relayed in ${relayed.filter((x) => x.complete).length} of ${relayed.length} run(s)`,
      },
      {
        scenario: 'P3',
        measure: 'change events/s relayed (absolute)',
        unit: '/s',
        value: summarize(rate),
        goal: { text: '≥ 10k/s', on: 'measure', direction: 'atLeast', threshold: 10_000 },
      },
    ],
    detail: { runs, cpu },
  };
}

/* ------------------------------------------------------------------------------------------ */
/* P4: SSE deliveries/s per core at the saturation point, gateway vs bare node:http and peers  */
/* ------------------------------------------------------------------------------------------ */

/** P4's comparison servers: each gets the same events (core NATS) and the same clients. */
const P4_SERVERS = [
  { key: 'bare', label: 'bare node:http', file: 'bench/lib/bare-sse.ts', portEnv: 'BENCH_BARE_PORT' },
  { key: 'better-sse', label: 'better-sse', file: 'bench/peers/sse-better-sse.ts', portEnv: 'BENCH_PEER_PORT' },
  { key: 'fastify-sse-v2', label: 'fastify-sse-v2', file: 'bench/peers/sse-fastify-sse-v2.ts', portEnv: 'BENCH_PEER_PORT' },
] as const;

/** SSE clients of P4 and of P6's saturation point (2 client processes of 500). */
const SAT_CLIENTS = 1000;
/** events/s offered, step by step, until the server is the limit (×2 each step) */
const SAT_SCHEDULE = [50, 100, 200, 400, 800, 1600] as const;
/** rows per transaction at a rate: 10, more above 500 events/s so that the writer stays at ≤ 50 commits/s */
export const satRowsPerTx = (eventsPerS: number) => Math.max(10, Math.ceil(eventsPerS / 50));

/**
 * Counts, in the bench process, the change events that reach the servers' feed (the same core NATS
 * subscription the comparison servers use): a step whose events did not all arrive is the relay's
 * limit, not the server's.
 */
async function feedCounter(c: Ctx): Promise<{ count(): number; close(): Promise<void> }> {
  let n = 0;
  const nc = await subscribeEvents('bench-feed-counter', () => n++, {
    servers: NATS_URL,
    subject: natsNames(c.env.prefix).subjects.eventFor('messages'),
    batchSubject: natsNames(c.env.prefix).subjects.eventBatch,
  });
  return { count: () => n, close: () => nc.close() };
}
type Feed = Awaited<ReturnType<typeof feedCounter>>;

/** One step of the search, with what the report needs beyond the classification. */
interface SseStep extends StepReading {
  rowsPerTx: number;
  /** events/s the writer managed (below `eventsPerS` when PostgreSQL is slower than the pace) */
  writtenPerS: number;
  clientsCpuPct: number;
  open: number;
  closed: number;
  hist?: WindowStats['hist'];
  win: CpuWindow;
}

/**
 * Offers `eventsPerS` change events to the connected clients (0.5 s at the new rate, then a window
 * of `seconds`), and reads deliveries at the clients and the CPU of the server, of each client
 * process and of the stack's processes.
 */
async function measureStep(
  c: Ctx,
  feed: Feed,
  procs: Proc[],
  openBefore: number,
  server: { label: string; pid: number },
  eventsPerS: number,
  seconds: number,
): Promise<SseStep> {
  const rowsPerTx = satRowsPerTx(eventsPerS);
  await pacedWriter(c.sql, c.conversationId, eventsPerS / rowsPerTx, rowsPerTx, 0.5);
  const closedBefore = (await windowStats(procs)).closed;
  signalAll(procs, 'SIGUSR1');
  const clientProcs: Watched = Object.fromEntries(procs.map((p) => [p.name, p.pid]));
  const w = cpuWindow({ ...watched(c), [server.label]: server.pid, ...clientProcs });
  const fed0 = feed.count();
  const t0 = performance.now();
  const rows = await pacedWriter(c.sql, c.conversationId, eventsPerS / rowsPerTx, rowsPerTx, seconds);
  const writeS = (performance.now() - t0) / 1000;
  await sleep(300); // what is in flight arrives
  const win = w.end();
  const fed = feed.count() - fed0;
  const st = await windowStats(procs);
  const clientCpuPct = procs.map((p) => win.cpu[p.name] ?? 0);
  return {
    eventsPerS,
    rowsPerTx,
    writtenPerS: rows / writeS,
    offered: (rows * openBefore) / st.seconds,
    delivered: st.events / st.seconds,
    fed: (fed * openBefore) / st.seconds,
    serverCpuPct: win.cpu[server.label] ?? 0,
    clientCpuPct,
    clientsCpuPct: clientCpuPct.reduce((a, b) => a + b, 0),
    machineBusyPct: win.machineBusyPct,
    cores: os.cpus().length,
    open: st.open,
    closed: st.closed - closedBefore,
    hist: st.hist,
    win,
  };
}

function logStep(c: Ctx, label: string, s: SseStep): void {
  c.log(
    `  ${label} @ ${s.eventsPerS} events/s (${s.rowsPerTx} rows/tx): ${fmt(s.delivered)} of ${fmt(s.offered)} deliveries/s (fed ${fmt(s.fed ?? Number.NaN)}), ` +
      `server ${s.serverCpuPct} %, clients ${s.clientCpuPct.join(' + ')} %, machine ${s.machineBusyPct} %${s.closed ? `, ${s.closed} cut` : ''} → ${classifyStep(s).limit}`,
  );
}

/**
 * The saturation search against one server: 1k clients connected, then `SAT_SCHEDULE` step by step
 * (bench/lib/saturation.ts decides when to stop), bounded by `budgetMs`.
 */
async function searchServer(
  c: Ctx,
  feed: Feed,
  server: { label: string; pid: number; port: number },
  budgetMs: number,
  opts: { latency?: boolean } = {},
): Promise<SearchResult<SseStep> & { connected: number }> {
  const deadline = performance.now() + budgetMs;
  const { procs, connected } = await openClients(server.port, SAT_CLIENTS, 500, { latency: opts.latency });
  try {
    await sleep(1000); // warm-up: connections settle
    let open = connected;
    const r = await saturationSearch({
      schedule: SAT_SCHEDULE,
      deadline,
      measure: async (rate) => {
        const s = await measureStep(c, feed, procs, open, server, rate, c.quick ? 2 : 3);
        open = s.open;
        logStep(c, server.label, s);
        return s;
      },
    });
    return { ...r, connected };
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
}

/** Waits (bounded: 15 s) until the clients receive nothing more for 0.5 s. */
async function quiesce(procs: Proc[]): Promise<void> {
  let last = -1;
  await waitUntil(
    async () => {
      const n = (await windowStats(procs)).events;
      const still = n === last;
      last = n;
      return still;
    },
    15_000,
    'the SSE clients to receive what was queued',
    500,
  ).catch(() => undefined);
}

/** What P4 leaves for P6 in `c.detail`: the gateway's saturation point of this run. */
export interface SaturationPoint {
  /** median over the runs of the step each was read at */
  eventsPerS: number;
  stoppedBy: string[];
  /** per run: the server was the limit (else the step is the highest one kept up) */
  saturated: boolean[];
}

export async function p4(c: Ctx): Promise<ScenarioResult> {
  // The whole of P4 stays within a few minutes: each server's search is bounded, and a run is
  // only started when the previous one's duration still fits in the budget.
  const BUDGET_MS = c.quick ? 150_000 : 270_000;
  const SERVER_BUDGET_MS = c.quick ? 30_000 : 40_000;
  const tStart = performance.now();
  const servers: Array<{ key: string; label: string; proc: Proc; port: number }> = [];
  type Searched = Awaited<ReturnType<typeof searchServer>>;
  const results: Record<string, Searched[]> = { gateway: [] };
  const runs: unknown[] = [];
  let skipped = 0;
  let feed: Feed | undefined;
  const stepJson = (s: Step<SseStep>) => ({ ...s.reading, hist: undefined, win: s.reading.win.cpu, limit: s.limit, why: s.why });
  try {
    for (const s of P4_SERVERS) {
      const port = await freePort();
      const proc = spawnTs(s.key, s.file, [], {
        nofile: 20_000,
        env: {
          [s.portEnv]: String(port),
          NATS_URL,
          BENCH_SUBJECT: natsNames(c.env.prefix).subjects.eventFor('messages'),
          BENCH_BATCH_SUBJECT: natsNames(c.env.prefix).subjects.eventBatch,
          NODE_ENV: 'production',
        },
      });
      servers.push({ key: s.key, label: s.label, proc, port });
      results[s.label] = [];
      await proc.nextMessage(30_000);
    }
    const f = (feed = await feedCounter(c));
    let lastRunMs = 0;
    for (let i = 0; i < c.runs; i++) {
      const t0 = performance.now();
      if (i > 0 && t0 - tStart + lastRunMs > BUDGET_MS) {
        skipped = c.runs - i;
        c.log(`P4: ${skipped} run(s) skipped, the next would end past P4's ${BUDGET_MS / 1000} s bound`);
        break;
      }
      const run: Record<string, unknown> = {};
      const line: string[] = [];
      const targets = [
        { label: 'gateway', pid: c.stack.get('gateway')?.pid ?? -1, port: c.env.ports.gateway },
        ...servers.map((s) => ({ label: s.label, pid: s.proc.pid, port: s.port })),
      ];
      for (const t of targets) {
        const r = await searchServer(c, f, t, SERVER_BUDGET_MS);
        results[t.label]?.push(r);
        run[t.label] = { connected: r.connected, stoppedBy: r.stoppedBy, steps: r.steps.map(stepJson) };
        const { step, saturated } = reportedStep(r);
        const at = step?.reading;
        line.push(
          `${t.label} ${at ? `${fmt(at.delivered)}/s at ${at.serverCpuPct} % CPU → ${fmt(perCore(at))} per core at ${at.eventsPerS} events/s${saturated ? '' : ' (highest step kept up)'}` : '–'} (${describeStop(r)})`,
        );
      }
      runs.push(run);
      lastRunMs = performance.now() - t0;
      c.log(`P4 run ${i + 1}: ${line.join('; ')}`);
    }
  } finally {
    await Promise.all(servers.map((s) => s.proc.stop()));
    await feed?.close();
  }
  const gw = results.gateway ?? [];
  // each run's figure: at the saturation point, or at the highest step kept up when another limit stopped it
  const atOf = (rs: Searched[]) => rs.map((r) => reportedStep(r).step?.reading).filter((s): s is SseStep => s !== undefined);
  const gwAt = atOf(gw);
  c.detail.p4Saturation = {
    eventsPerS: summarize(gwAt.map((s) => s.eventsPerS)).median,
    stoppedBy: gw.map((r) => r.stoppedBy),
    saturated: gw.map((r) => reportedStep(r).saturated),
  } satisfies SaturationPoint;
  const cpu = cpuSummary(gwAt.map((s) => s.win));
  const perCoreOf = (rs: Searched[]) => summarize(atOf(rs).map(perCore));
  const cpuOf = (rs: Searched[], of: string) => ({
    unit: 'µs/delivery',
    value: summarize(atOf(rs).map((s) => 1e6 / perCore(s))),
    of,
  });
  // per server: where each run stopped and why, the clients' CPU there (the load generator shares the cores)
  const stops = Object.entries(results)
    .map(([k, rs]) => {
      const at = atOf(rs);
      const med = (f: (s: SseStep) => number) => fmt(summarize(at.map(f)).median);
      const notServer = rs.filter((r) => !isServerLimit(r.stoppedBy)).length;
      return (
        `${k}: stopped at ${rs.map((r) => (r.at ? `${r.at.reading.eventsPerS}/s ${r.stoppedBy}` : r.stoppedBy)).join(', ')}; ` +
        `read at ${at.map((s) => `${s.eventsPerS}/s`).join(', ')}: ` +
        `${med((s) => s.delivered)} of ${med((s) => s.offered)} deliveries/s offered, server ${med((s) => s.serverCpuPct)} %, ` +
        `SSE clients ${med((s) => s.clientsCpuPct)} % (${med((s) => (s.clientsCpuPct * 1e4) / Math.max(1, s.delivered))} µs/delivery), ` +
        `machine ${med((s) => s.machineBusyPct)} %${notServer ? ` — **${notServer} of ${rs.length} run(s) not a server saturation** (read at the highest step that kept up)` : ''}`
      );
    })
    .join('; ');
  // "at its saturation point" only where every run of that server found one
  const where = (rs: Searched[]) =>
    rs.length > 0 && rs.every((r) => reportedStep(r).saturated)
      ? 'at its saturation point'
      : 'at its saturation point or, where none was reached, its highest step kept up';
  const compared = (label: string, goal: Row['goal']): Row => ({
    scenario: 'P4',
    measure:
      label === 'bare node:http'
        ? `SSE deliveries/s per core of one gateway process ${where(gw)} (${SAT_CLIENTS} clients, events/s offered ×2 from ${SAT_SCHEDULE[0]} until the server is the limit)`
        : `the same, against ${label}`,
    unit: '/s',
    value: perCoreOf(gw),
    cpu: cpuOf(gw, 'gateway'),
    raw: {
      label: `${label}, same events and clients, per core ${where(results[label] ?? [])}`,
      value: perCoreOf(results[label] ?? []),
      cpu: cpuOf(results[label] ?? [], 'its server'),
    },
    goal,
  });
  return {
    rows: [
      {
        ...compared('bare node:http', { text: '≥ 70 % of bare node:http', on: 'ratio', direction: 'atLeast', threshold: 0.7 }),
        note:
          `per core = deliveries/s counted at the clients ÷ the server's CPU share, at the step where the server was the limit ` +
          `(its core ≥ 90 % or deliveries behind what it was fed); when the SSE clients, the relay feeding the servers or the shared machine ` +
          `stopped the search first, at the highest step that kept up instead, which is then no saturation point. ` +
          `Stops (events/s, limit) and the figures there, medians: ${stops}.` +
          `${skipped ? ` ${skipped} run(s) skipped (P4's time bound).` : ''} gateway windows: ${cpuNote(cpu)}`,
      },
      compared('better-sse', { text: 'ahead (≥ 100 %)', on: 'ratio', direction: 'atLeast', threshold: 1 }),
      compared('fastify-sse-v2', { text: 'ahead (≥ 100 %)', on: 'ratio', direction: 'atLeast', threshold: 1 }),
      {
        scenario: 'P4',
        measure: `SSE deliveries/s of one gateway process ${where(gw)} (absolute)`,
        unit: '/s',
        value: summarize(gwAt.map((s) => s.delivered)),
        raw: {
          label: `bare node:http ${where(results['bare node:http'] ?? [])}`,
          value: summarize(atOf(results['bare node:http'] ?? []).map((s) => s.delivered)),
        },
      },
    ],
    detail: { schedule: SAT_SCHEDULE, clients: SAT_CLIENTS, runs, skipped, cpu },
  };
}

/* ------------------------------------------------------------------------------------------ */
/* P5: idle SSE connections per gateway process                                               */
/* ------------------------------------------------------------------------------------------ */

export async function p5(c: Ctx): Promise<ScenarioResult> {
  // One process holds at most its fd limit: the gateway is started with `ulimit -n 200000`, which
  // only takes where the hard limit allows it (a container may cap it lower without CAP_SYS_RESOURCE).
  const hard = Number(execFileSync('/bin/sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim());
  const fdCap = Number.isFinite(hard) ? hard - 300 : 50_000;
  const TARGET = Math.min(c.quick ? 5000 : 50_000, fdCap);
  const addrs = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'];
  const open: number[] = [];
  const perConnKiB: number[] = [];
  const projectedMiB: number[] = [];
  const idleMiB: number[] = [];
  const samples: unknown[] = [];
  let connectedLast = 0;
  // Each sample on a freshly started gateway (its own port, the same database and streams), so
  // "before" is a gateway that has done nothing yet, not one that ran P1–P6.
  for (let i = 0; i < c.runs; i++) {
    const env = { ...c.env, ports: { ...c.env.ports, gateway: await freePort() } };
    const gw = await startService('gateway', env, { nofile: 200_000 });
    try {
      await sleep(2000);
      const before = rssBytes(gw.proc.pid) ?? 0;
      const { procs, connected, seconds } = await openClients(env.ports.gateway, TARGET, 10_000, {
        addrs,
        connectMs: c.quick ? 60_000 : 150_000,
      });
      try {
        await sleep(3000);
        const after = rssBytes(gw.proc.pid) ?? 0;
        const st = await windowStats(procs);
        const perConn = connected > 0 ? (after - before) / connected : Number.NaN;
        const projected50k = before + perConn * 50_000;
        open.push(st.open);
        perConnKiB.push(perConn / 1024);
        projectedMiB.push(projected50k / 2 ** 20);
        idleMiB.push(before / 2 ** 20);
        connectedLast = connected;
        samples.push({ connected, connectSeconds: seconds, open: st.open, rssBefore: before, rssAfter: after, perConn, projected50k });
        c.log(
          `P5 sample ${i + 1} (fresh gateway): ${connected}/${TARGET} connected in ${seconds.toFixed(1)} s (${st.open} still open); RSS ${(before / 2 ** 20).toFixed(0)} → ${(after / 2 ** 20).toFixed(0)} MiB, ${(perConn / 1024).toFixed(1)} KiB per connection`,
        );
      } finally {
        await Promise.all(procs.map((p) => p.stop()));
      }
    } finally {
      await gw.proc.stop('SIGTERM', 10_000);
    }
  }
  const extrapolated = connectedLast < 50_000;
  return {
    rows: [
      {
        scenario: 'P5',
        measure: `idle SSE connections held by one freshly started gateway process (target ${TARGET})`,
        unit: '',
        value: summarize(open),
        goal: { text: '50,000', on: 'measure', direction: 'atLeast', threshold: 50_000 },
        note:
          TARGET < 50_000
            ? `target capped at ${TARGET} by this machine's hard fd limit (ulimit -Hn ${hard}): one process cannot hold more sockets here`
            : undefined,
      },
      {
        scenario: 'P5',
        measure: `gateway RSS at 50k connections${extrapolated ? ` (extrapolated from ${connectedLast})` : ''}, MiB`,
        unit: 'MiB',
        value: summarize(projectedMiB),
        goal: { text: '< 1 GiB', on: 'measure', direction: 'atMost', threshold: 1024 },
        note: `fresh gateway idle RSS ${fmt(summarize(idleMiB).median)} MiB (2 s after ready), + ${fmt(summarize(perConnKiB).median)} KiB per connection`,
      },
      { scenario: 'P5', measure: 'RSS per idle SSE connection', unit: 'KiB', value: summarize(perConnKiB) },
    ],
    detail: { target: TARGET, samples },
  };
}

/* ------------------------------------------------------------------------------------------ */
/* P6: commit → SSE client latency                                                            */
/* ------------------------------------------------------------------------------------------ */

export async function p6(c: Ctx): Promise<ScenarioResult> {
  const CLIENTS = 1000;
  const RATE = 100;
  const p50: number[] = [];
  const p99: number[] = [];
  const runs: unknown[] = [];
  const windows: CpuWindow[] = [];
  const sat: {
    p50: number[];
    p99: number[];
    steps: SseStep[];
    source: string;
    eventsPerS: number;
    searched?: Array<{ eventsPerS: number; limit: string; why: string }>;
    saturated: boolean;
  } = {
    saturated: false,
    p50: [],
    p99: [],
    steps: [],
    source: '',
    eventsPerS: Number.NaN,
  };
  const { procs, connected } = await openClients(c.env.ports.gateway, CLIENTS, 500, { latency: true });
  let feed: Feed | undefined;
  try {
    await pacedWriter(c.sql, c.conversationId, RATE, 1, 1); // warm-up
    await analyzeAfterWarmUp(c.probe);
    for (let i = 0; i < c.runs; i++) {
      signalAll(procs, 'SIGUSR1');
      const w = cpuWindow(watched(c, { 'sse-clients': clientPids(procs) }));
      const rows = await pacedWriter(c.sql, c.conversationId, RATE, 1, c.seconds);
      await sleep(500);
      windows.push(w.end());
      const st = await windowStats(procs);
      const h = new Histogram();
      if (st.hist) h.merge(st.hist);
      p50.push(h.percentile(0.5));
      p99.push(h.percentile(0.99));
      runs.push({
        rows,
        expected: rows * connected,
        received: st.events,
        p50: h.percentile(0.5),
        p90: h.percentile(0.9),
        p99: h.percentile(0.99),
        p999: h.percentile(0.999),
        max: h.max,
        open: st.open,
      });
      c.log(
        `P6 run ${i + 1}: ${st.events}/${rows * connected} events, p50 ${h.percentile(0.5).toFixed(1)} ms, p99 ${h.percentile(0.99).toFixed(1)} ms, max ${h.max.toFixed(0)} ms`,
      );
    }
    // The same latency at the gateway's saturation point: the one P4 found in this run, or (P4 not
    // run) one searched here with these latency clients, which cost more CPU than P4's.
    const gateway = { label: 'gateway', pid: c.stack.get('gateway')?.pid ?? -1 };
    const found = c.detail.p4Saturation as SaturationPoint | undefined;
    const record = (s: SseStep) => {
      const h = new Histogram();
      if (s.hist) h.merge(s.hist);
      sat.steps.push(s);
      sat.p50.push(h.percentile(0.5));
      sat.p99.push(h.percentile(0.99));
      c.log(
        `P6 @ ${s.eventsPerS} events/s (${s.rowsPerTx} rows/tx): ${fmt(s.delivered)} of ${fmt(s.offered)} deliveries/s, gateway ${s.serverCpuPct} %, clients ${s.clientCpuPct.join(' + ')} %, p50 ${h.percentile(0.5).toFixed(1)} ms, p99 ${h.percentile(0.99).toFixed(1)} ms (${classifyStep(s).why})`,
      );
    };
    const f = (feed = await feedCounter(c));
    if (found && Number.isFinite(found.eventsPerS)) {
      const sats = found.saturated.filter(Boolean).length;
      sat.source =
        `the events/s P4 read the gateway at in this run (stopped by ${found.stoppedBy.join(', ')}; ` +
        `${sats === found.saturated.length ? 'a saturation point' : `${sats} of ${found.saturated.length} runs a saturation point, else the highest step kept up`})`;
      sat.eventsPerS = found.eventsPerS;
      sat.saturated = sats === found.saturated.length;
      for (let i = 0; i < c.runs; i++) {
        // a window the gateway did not keep up with leaves a backlog: let it drain first, so
        // that each window's latency is its own
        if (i > 0) await quiesce(procs);
        record(await measureStep(c, f, procs, connected, gateway, found.eventsPerS, c.quick ? 2 : 3));
      }
    } else {
      const r = await saturationSearch({
        schedule: SAT_SCHEDULE,
        deadline: performance.now() + (c.quick ? 30_000 : 40_000),
        measure: async (rate) => {
          const s = await measureStep(c, f, procs, connected, gateway, rate, c.quick ? 2 : 3);
          logStep(c, 'gateway (P6 latency clients)', s);
          return s;
        },
      });
      // the step read, as in P4: the saturation point, or the highest one kept up (the others are in the JSON)
      const { step, saturated } = reportedStep(r);
      sat.saturated = saturated;
      sat.searched = r.steps.map((s) => ({ eventsPerS: s.reading.eventsPerS, limit: s.limit, why: s.why }));
      if (step) record(step.reading);
      sat.source = `searched here, P4 not run (${describeStop(r)})`;
      sat.eventsPerS = step?.reading.eventsPerS ?? Number.NaN;
    }
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await feed?.close();
  }
  const cpu = cpuSummary(windows);
  const med = (f: (s: SseStep) => number) => fmt(summarize(sat.steps.map(f)).median);
  const keptUp = sat.steps.filter((s) => classifyStep(s).limit === 'none').length;
  const satNote = sat.steps.length
    ? `${sat.source}; there (medians of ${sat.steps.length} window(s)) the gateway used ${med((s) => s.serverCpuPct)} % of a core and the SSE clients ` +
      `${med((s) => s.clientsCpuPct)} %, ${med((s) => s.delivered)} of ${med((s) => s.offered)} deliveries/s offered, machine ${med((s) => s.machineBusyPct)} %; ` +
      `the gateway kept up in ${keptUp} of ${sat.steps.length} window(s) (these latency clients cost more CPU than P4's); p50 ${fmt(summarize(sat.p50).median)} ms. ` +
      `Where events queue, this p99 grows with the window's length (${c.quick ? 2 : 3} s)`
    : 'no step measured';
  return {
    rows: [
      {
        scenario: 'P6',
        measure: `change → SSE client latency p99 (${CLIENTS} clients, ${RATE} events/s, one row per commit)`,
        unit: 'ms',
        value: summarize(p99),
        goal: { text: '≤ 50 ms', on: 'measure', direction: 'atMost', threshold: 50 },
        note: `p50 ${summarize(p50).median.toFixed(1)} ms. Measured from the journal row's change time (clock_timestamp in the trigger, ms precision, before commit) to receipt. ${cpuNote(cpu)}`,
      },
      {
        scenario: 'P6',
        measure: `the same p99 at ${sat.saturated ? "the gateway's saturation point" : 'the highest load the gateway kept up with (no saturation point reached, see note)'} (${CLIENTS} clients, ${fmt(sat.eventsPerS)} events/s in ${satRowsPerTx(sat.eventsPerS)}-row commits)`,
        unit: 'ms',
        value: summarize(sat.p99),
        note: satNote,
      },
    ],
    detail: {
      runs,
      cpu,
      saturation: { ...sat, steps: sat.steps.map((s) => ({ ...s, hist: undefined, win: s.win.cpu })) },
    },
  };
}

/**
 * P3 (change events/s relayed DB → NATS → SSE), P4 (SSE deliveries/s per core against a bare
 * node:http server), P5 (idle SSE connections and RSS), P6 (commit → SSE client latency).
 */
import { execFileSync } from 'node:child_process';
import { Histogram, summarize } from '../lib/report.js';
import { cpuWindow, rssBytes, sleep, spawnTs, waitUntil, type CpuWindow } from '../lib/procs.js';
import { insertTps, NATS_URL } from '../lib/infra.js';
import { freePort } from '../lib/stack.js';
import { cpuNote, cpuSummary, watched, type Ctx, type ScenarioResult } from './context.js';
import { clientPids, insertRows, openClients, pacedWriter, signalAll, windowStats } from './sse-clients.js';

/* ------------------------------------------------------------------------------------------ */
/* P3: change events/s relayed DB → NATS → SSE                                                */
/* ------------------------------------------------------------------------------------------ */

export async function p3(c: Ctx): Promise<ScenarioResult> {
  const raw: number[] = [];
  const rate: number[] = [];
  const windows: CpuWindow[] = [];
  const runs: unknown[] = [];
  const WRITERS = 8;
  const ROWS = 20;
  // One client that resumes with Last-Event-ID when the gateway cuts it as too slow (contract).
  const { procs } = await openClients(c.env.ports.gateway, 1, 1, { resume: true });
  try {
    for (let i = 0; i < c.runs; i++) {
      const r = await insertTps(c.env.dbUrl, 'bench_raw_notify', 16, c.seconds);
      raw.push(r.tps);
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
      let got = 0;
      let resumes = 0;
      let tDone = 0;
      await waitUntil(
        async () => {
          const st = await windowStats(procs);
          got = st.events;
          resumes = st.resumes ?? 0;
          if (got >= inserted) tDone = performance.now();
          return got >= inserted;
        },
        30_000,
        'every change event at the SSE client',
        250,
      ).catch(() => undefined);
      windows.push(w.end());
      const seconds = ((tDone || performance.now()) - t0) / 1000;
      rate.push(got / seconds);
      runs.push({
        rawNotifyTps: r.tps,
        inserted,
        writeRate: inserted / writeSeconds,
        received: got,
        resumes,
        seconds,
        complete: tDone > 0,
      });
      c.log(
        `P3 run ${i + 1}: raw notify ${r.tps.toFixed(0)} tps; wrote ${inserted} rows at ${(inserted / writeSeconds).toFixed(0)}/s, relayed ${got} in ${seconds.toFixed(1)} s → ${(got / seconds).toFixed(0)}/s (client resumed ${resumes}×)`,
      );
    }
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
  const cpu = cpuSummary(windows);
  return {
    rows: [
      {
        scenario: 'P3',
        measure: `change events/s relayed DB → NATS → SSE client (${WRITERS} writers, ${ROWS}-row transactions)`,
        unit: '/s',
        value: summarize(rate),
        raw: { label: 'pgbench INSERT + per-row pg_notify trigger tps, 16 clients', value: summarize(raw) },
        goal: { text: '≥ 2× raw', on: 'ratio', direction: 'atLeast', threshold: 2 },
        note: `bottleneck ${cpu.bottleneck}. ${cpuNote(cpu)}`,
      },
    ],
    detail: { runs, cpu },
  };
}

/* ------------------------------------------------------------------------------------------ */
/* P4: SSE deliveries/s per gateway process vs a bare node:http server                        */
/* ------------------------------------------------------------------------------------------ */

export async function p4(c: Ctx): Promise<ScenarioResult> {
  const CLIENTS = 1000;
  const EVENTS_PER_S = 200;
  const ROWS = 10;
  const barePort = await freePort();
  const bare = spawnTs('bare-sse', 'bench/lib/bare-sse.ts', [], {
    nofile: 20_000,
    env: { BENCH_BARE_PORT: String(barePort), NATS_URL, BENCH_SUBJECT: `${c.env.prefix.toLowerCase()}.events.messages` },
  });
  await bare.nextMessage(30_000);
  const measure = async (target: 'gateway' | 'bare', serverPid: number, sseport: number) => {
    const { procs, connected } = await openClients(sseport, CLIENTS, 500);
    try {
      await sleep(1000); // warm-up: connections settle, first events flow
      await pacedWriter(c.sql, c.conversationId, EVENTS_PER_S / ROWS, ROWS, 1);
      signalAll(procs, 'SIGUSR1');
      const key = target === 'gateway' ? 'gateway' : 'bare node:http SSE server';
      const w = cpuWindow({ ...watched(c, { 'sse-clients': clientPids(procs) }), [key]: serverPid });
      await pacedWriter(c.sql, c.conversationId, EVENTS_PER_S / ROWS, ROWS, c.seconds);
      await sleep(300);
      const win = w.end();
      const st = await windowStats(procs);
      const deliveries = st.events / st.seconds;
      const serverCpu = win.cpu[key] ?? 0;
      return {
        connected,
        deliveries,
        serverCpuPct: serverCpu,
        perCore: deliveries / Math.max(0.05, serverCpu / 100),
        open: st.open,
        closed: st.closed,
        win,
      };
    } finally {
      await Promise.all(procs.map((p) => p.stop()));
    }
  };
  const hatch: number[] = [];
  const rawv: number[] = [];
  const hatchObs: number[] = [];
  const rawObs: number[] = [];
  const runs: unknown[] = [];
  const windows: CpuWindow[] = [];
  try {
    for (let i = 0; i < c.runs; i++) {
      const g = await measure('gateway', c.stack.get('gateway')?.pid ?? -1, c.env.ports.gateway);
      const b = await measure('bare', bare.pid, barePort);
      hatch.push(g.perCore);
      rawv.push(b.perCore);
      hatchObs.push(g.deliveries);
      rawObs.push(b.deliveries);
      windows.push(g.win);
      runs.push({ gateway: { ...g, win: undefined }, bare: { ...b, win: undefined } });
      c.log(
        `P4 run ${i + 1}: gateway ${g.deliveries.toFixed(0)} deliveries/s at ${g.serverCpuPct}% CPU (${g.connected} clients, ${g.closed} cut); ` +
          `bare ${b.deliveries.toFixed(0)}/s at ${b.serverCpuPct}% CPU`,
      );
    }
  } finally {
    await bare.stop();
  }
  const cpu = cpuSummary(windows);
  return {
    rows: [
      {
        scenario: 'P4',
        measure: `SSE deliveries/s per core of one gateway process (${CLIENTS} clients, ${EVENTS_PER_S} events/s offered)`,
        unit: '/s',
        value: summarize(hatch),
        raw: { label: 'bare node:http, same events and clients, per core', value: summarize(rawv) },
        goal: { text: '≥ 70 % of raw', on: 'ratio', direction: 'atLeast', threshold: 0.7 },
        note:
          `observed deliveries/s: gateway ${summarize(hatchObs).median.toFixed(0)}, bare ${summarize(rawObs).median.toFixed(0)} ` +
          `(offered ${EVENTS_PER_S * CLIENTS}/s); per core = observed ÷ the server's CPU share. gateway window: ${cpuNote(cpu)}`,
      },
    ],
    detail: { runs, cpu },
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
  const gw = c.stack.get('gateway');
  if (!gw) throw new Error('no gateway');
  if (global.gc) global.gc();
  const before = rssBytes(gw.pid) ?? 0;
  const addrs = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'];
  const { procs, connected, seconds } = await openClients(c.env.ports.gateway, TARGET, 10_000, {
    addrs,
    connectMs: c.quick ? 60_000 : 150_000,
  });
  try {
    await sleep(3000);
    const after = rssBytes(gw.pid) ?? 0;
    const st = await windowStats(procs);
    const perConn = connected > 0 ? (after - before) / connected : Number.NaN;
    const projected50k = before + perConn * 50_000;
    c.log(
      `P5: ${connected}/${TARGET} connected in ${seconds.toFixed(1)} s (${st.open} still open); gateway RSS ${(before / 2 ** 20).toFixed(0)} → ${(after / 2 ** 20).toFixed(0)} MiB, ${(perConn / 1024).toFixed(1)} KiB per connection`,
    );
    const extrapolated = connected < 50_000;
    return {
      rows: [
        {
          scenario: 'P5',
          measure: `idle SSE connections held by one gateway process (target ${TARGET})`,
          unit: '',
          value: summarize([st.open]),
          goal: { text: '50,000', on: 'measure', direction: 'atLeast', threshold: 50_000 },
          note: `connected ${connected} in ${seconds.toFixed(1)} s${TARGET < 50_000 ? `; target capped at ${TARGET} by this machine's hard fd limit (ulimit -Hn ${hard}): one process cannot hold more sockets here` : ''}`,
        },
        {
          scenario: 'P5',
          measure: `gateway RSS at 50k connections${extrapolated ? ` (extrapolated from ${connected})` : ''}, MiB`,
          unit: 'MiB',
          value: summarize([projected50k / 2 ** 20]),
          goal: { text: '< 1 GiB', on: 'measure', direction: 'atMost', threshold: 1024 },
          note: `RSS ${(before / 2 ** 20).toFixed(0)} MiB idle → ${(after / 2 ** 20).toFixed(0)} MiB with ${connected}: ${(perConn / 1024).toFixed(1)} KiB per connection`,
        },
        { scenario: 'P5', measure: 'RSS per idle SSE connection', unit: 'KiB', value: summarize([perConn / 1024]) },
      ],
      detail: {
        target: TARGET,
        connected,
        connectSeconds: seconds,
        open: st.open,
        rssBefore: before,
        rssAfter: after,
        perConn,
        projected50k,
      },
    };
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
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
  const { procs, connected } = await openClients(c.env.ports.gateway, CLIENTS, 500, { latency: true });
  try {
    await pacedWriter(c.sql, c.conversationId, RATE, 1, 1); // warm-up
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
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
  const cpu = cpuSummary(windows);
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
    ],
    detail: { runs, cpu },
  };
}

/**
 * P3 (change events/s relayed DB → NATS → SSE, and CPU per event, against per-row NOTIFY), P4
 * (SSE deliveries/s per core and CPU per delivery against a bare node:http server, better-sse and
 * fastify-sse-v2), P5 (idle SSE connections and RSS of a fresh gateway), P6 (commit → SSE client
 * latency).
 */
import { execFileSync } from 'node:child_process';
import { cpuMsPerUnit, fmt, Histogram, summarize, type Row } from '../lib/report.js';
import { cpuWindow, rssBytes, sleep, spawnTs, waitUntil, type CpuWindow, type Proc } from '../lib/procs.js';
import { NATS_URL, notifyRowsScript, pgbenchAvailable, pgbenchScript } from '../lib/infra.js';
import { freePort, startService } from '../lib/stack.js';
import { cpuNote, cpuSummary, perUnitNote, pgPidsOf, watched, type Ctx, type ScenarioResult } from './context.js';
import { clientPids, insertRows, openClients, pacedWriter, signalAll, windowStats } from './sse-clients.js';

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

/** CPU of a relayed event: PostgreSQL (writers' inserts, journal, reads), the bridge, NATS, the gateway. */
const P3_CPU = ['postgres (bench db backends)', 'realtime-bridge', 'nats-server', 'gateway'];

export async function p3(c: Ctx): Promise<ScenarioResult> {
  const rate: number[] = [];
  const cpuPerEvent: number[] = [];
  const received: number[] = [];
  const same: Array<{ rowsPerS: number; cpuMsPerRow: number }> = [];
  const one: Array<{ rowsPerS: number; cpuMsPerRow: number }> = [];
  const windows: CpuWindow[] = [];
  const runs: unknown[] = [];
  const WRITERS = 8;
  const ROWS = 20;
  if (!pgbenchAvailable()) throw new Error('P3 needs pgbench (its per-row NOTIFY baselines)');
  // One client that resumes with Last-Event-ID when the gateway cuts it as too slow (contract).
  const { procs } = await openClients(c.env.ports.gateway, 1, 1, { resume: true });
  try {
    for (let i = 0; i < c.runs; i++) {
      // Baselines: per-row NOTIFY (a trigger per row) at the same rows per transaction and
      // writers as Hatch's below, and at one row per transaction (what API sends would be
      // without group commit). No listener: the notifications are queued, not delivered.
      same.push(await notifyBaseline(c, ROWS, WRITERS));
      one.push(await notifyBaseline(c, 1, WRITERS));
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
          `Hatch wrote ${inserted} rows at ${(inserted / writeSeconds).toFixed(0)}/s, relayed ${got} in ${seconds.toFixed(1)} s → ${(got / seconds).toFixed(0)}/s, ${cpe.toFixed(3)} CPU ms/event (client resumed ${resumes}×)`,
      );
    }
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
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
/* P4: SSE deliveries/s per gateway process vs a bare node:http server                        */
/* ------------------------------------------------------------------------------------------ */

/** P4's comparison servers: each gets the same events (core NATS) and the same clients. */
const P4_SERVERS = [
  { key: 'bare', label: 'bare node:http', file: 'bench/lib/bare-sse.ts', portEnv: 'BENCH_BARE_PORT' },
  { key: 'better-sse', label: 'better-sse', file: 'bench/peers/sse-better-sse.ts', portEnv: 'BENCH_PEER_PORT' },
  { key: 'fastify-sse-v2', label: 'fastify-sse-v2', file: 'bench/peers/sse-fastify-sse-v2.ts', portEnv: 'BENCH_PEER_PORT' },
] as const;

export async function p4(c: Ctx): Promise<ScenarioResult> {
  const CLIENTS = 1000;
  // 50 events/s (5 ten-row commits a second), not the 200 of earlier runs: the peers write each
  // event to each client on its own (the gateway and the bare server coalesce a burst per tick),
  // and at 200/s their 200k small writes a second were more than the two SSE client processes
  // could read on this machine: their servers then sat waiting on full sockets, and the per-core
  // figure counted work whose bytes had not arrived yet.
  const EVENTS_PER_S = 50;
  const ROWS = 10;
  const servers: Array<{ key: string; label: string; proc: Proc; port: number }> = [];
  const measure = async (label: string, serverPid: number, sseport: number) => {
    const { procs, connected } = await openClients(sseport, CLIENTS, 500);
    try {
      await sleep(1000); // warm-up: connections settle, first events flow
      await pacedWriter(c.sql, c.conversationId, EVENTS_PER_S / ROWS, ROWS, 1);
      signalAll(procs, 'SIGUSR1');
      const w = cpuWindow({ ...watched(c, { 'sse-clients': clientPids(procs) }), [label]: serverPid });
      await pacedWriter(c.sql, c.conversationId, EVENTS_PER_S / ROWS, ROWS, c.seconds);
      await sleep(300);
      const win = w.end();
      const st = await windowStats(procs);
      const deliveries = st.events / st.seconds;
      const serverCpu = win.cpu[label] ?? 0;
      const perCore = deliveries / Math.max(0.05, serverCpu / 100);
      return {
        connected,
        deliveries,
        serverCpuPct: serverCpu,
        perCore,
        cpuUsPerDelivery: 1e6 / perCore,
        open: st.open,
        closed: st.closed,
        win,
      };
    } finally {
      await Promise.all(procs.map((p) => p.stop()));
    }
  };
  type Measured = Awaited<ReturnType<typeof measure>>;
  const results: Record<string, Measured[]> = { gateway: [] };
  const runs: unknown[] = [];
  try {
    for (const s of P4_SERVERS) {
      const port = await freePort();
      const proc = spawnTs(s.key, s.file, [], {
        nofile: 20_000,
        env: {
          [s.portEnv]: String(port),
          NATS_URL,
          BENCH_SUBJECT: `${c.env.prefix.toLowerCase()}.events.messages`,
          // the bridge's batches (natsNames(prefix).subjects.eventBatch in @hatch/contracts)
          BENCH_BATCH_SUBJECT: `${c.env.prefix.toLowerCase()}.events.batch`,
          NODE_ENV: 'production',
        },
      });
      servers.push({ key: s.key, label: s.label, proc, port });
      results[s.label] = [];
      await proc.nextMessage(30_000);
    }
    for (let i = 0; i < c.runs; i++) {
      const run: Record<string, unknown> = {};
      const g = await measure('gateway', c.stack.get('gateway')?.pid ?? -1, c.env.ports.gateway);
      results.gateway?.push(g);
      run.gateway = { ...g, win: undefined };
      const line = [`gateway ${g.deliveries.toFixed(0)} deliveries/s at ${g.serverCpuPct}% CPU (${g.connected} clients, ${g.closed} cut)`];
      for (const s of servers) {
        const m = await measure(s.label, s.proc.pid, s.port);
        results[s.label]?.push(m);
        run[s.label] = { ...m, win: undefined };
        line.push(`${s.label} ${m.deliveries.toFixed(0)}/s at ${m.serverCpuPct}% CPU (${m.connected} clients)`);
      }
      runs.push(run);
      c.log(`P4 run ${i + 1}: ${line.join('; ')}`);
    }
  } finally {
    await Promise.all(servers.map((s) => s.proc.stop()));
  }
  const gw = results.gateway ?? [];
  const cpu = cpuSummary(gw.map((m) => m.win));
  const perCore = (ms: Measured[]) => summarize(ms.map((m) => m.perCore));
  const cpuOf = (ms: Measured[], of: string) => ({ unit: 'µs/delivery', value: summarize(ms.map((m) => m.cpuUsPerDelivery)), of });
  const observed = Object.entries(results)
    .map(
      ([k, ms]) =>
        `${k} ${summarize(ms.map((m) => m.deliveries)).median.toFixed(0)} at ${summarize(ms.map((m) => m.serverCpuPct)).median.toFixed(0)} % CPU`,
    )
    .join(', ');
  const compared = (label: string, goal: Row['goal']): Row => ({
    scenario: 'P4',
    measure:
      label === 'bare node:http'
        ? `SSE deliveries/s per core of one gateway process (${CLIENTS} clients, ${EVENTS_PER_S} events/s offered)`
        : `the same, against ${label}`,
    unit: '/s',
    value: perCore(gw),
    cpu: cpuOf(gw, 'gateway'),
    raw: {
      label: `${label}, same events and clients, per core`,
      value: perCore(results[label] ?? []),
      cpu: cpuOf(results[label] ?? [], 'its server'),
    },
    goal,
  });
  return {
    rows: [
      {
        ...compared('bare node:http', { text: '≥ 70 % of bare node:http', on: 'ratio', direction: 'atLeast', threshold: 0.7 }),
        note:
          `observed deliveries/s and server CPU: ${observed} (offered ${EVENTS_PER_S * CLIENTS}/s); per core = observed ÷ the server's CPU share ` +
          `(not a saturation point: at this rate no server fills its core). gateway window: ${cpuNote(cpu)}`,
      },
      compared('better-sse', { text: 'ahead (≥ 100 %)', on: 'ratio', direction: 'atLeast', threshold: 1 }),
      compared('fastify-sse-v2', { text: 'ahead (≥ 100 %)', on: 'ratio', direction: 'atLeast', threshold: 1 }),
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

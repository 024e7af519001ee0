/**
 * P1 (accepted sends/s and CPU per send against pgbench writing the same rows) and P2 (end-to-end
 * SMS/s and CPU per SMS against the same flow on BullMQ + Redis and on pg-boss, bench/peers/):
 * all drive POST /api/send_message with autocannon.
 */
import autocannon from 'autocannon';
import { cpuMsPerUnit, histogramSumCount, summarize, windowMean, type Row } from '../lib/report.js';
import { cpuWindow, pidsByComm, spawnTs, waitUntil, type CpuWindow, type Proc, type Watched } from '../lib/procs.js';
import {
  analyzeAfterWarmUp,
  benchSql,
  createPlainDb,
  deleteRedisKeys,
  pgbenchAvailable,
  pgbenchScript,
  purgeStream,
  REDIS_URL,
  sendScript,
} from '../lib/infra.js';
import { freePort, startService, TOKEN, TWILIO } from '../lib/stack.js';
import { cpuNote, cpuSummary, gatewayUrl, perUnitNote, pgPidsOf, watched, type Ctx, type ScenarioResult } from './context.js';

/* ------------------------------------------------------------------------------------------ */
/* P1: accepted sends/s                                                                       */
/* ------------------------------------------------------------------------------------------ */

const CONNECTIONS = 16;

let sendCounter = 0;

/**
 * One request template; each request gets the next recipient of a 10k pool (chat contacts and
 * E.164 numbers alternating, or SMS only), so concurrent requests hit different conversations as
 * a team's traffic does (a send holds its conversation's row lock until commit: see README).
 */
function sendRequests(kind: 'mixed' | 'sms') {
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` };
  return [
    {
      method: 'POST' as const,
      path: '/api/send_message',
      headers,
      setupRequest: (req: { body?: string | Buffer }) => {
        const i = sendCounter++;
        const k = i % 10_000;
        const sms = kind === 'sms' || i % 2 === 1;
        req.body = JSON.stringify(
          sms
            ? { to: `+1555${String(1_000_000 + k).slice(-7)}`, body: `bench sms ${i}` }
            : { to: `bench-contact-${k}`, body: `bench chat ${i}` },
        );
        return req;
      },
    },
  ];
}

async function cannon(c: Ctx, opts: { seconds: number; kind: 'mixed' | 'sms'; overallRate?: number; connections?: number; url?: string }) {
  const r = await autocannon({
    url: opts.url ?? gatewayUrl(c),
    connections: opts.connections ?? CONNECTIONS,
    duration: opts.seconds,
    requests: sendRequests(opts.kind),
    ...(opts.overallRate ? { overallRate: Math.max(1, Math.round(opts.overallRate)) } : {}),
  });
  const ok = r['2xx'];
  return {
    accepted: ok,
    rate: ok / opts.seconds,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    p50: r.latency.p50,
    p99: r.latency.p99,
  };
}

async function metricsText(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
  return res.text();
}

/** The gateway's group-commit histogram (sum, count) from its /metrics. */
async function batchSizes(c: Ctx) {
  return histogramSumCount(await metricsText(gatewayUrl(c)), 'hatch_send_batch_size');
}

/** P2's grouped writes (`hatch_write_group_size{writes}`): which process makes them, and the label. */
const P2_GROUPS = [
  { label: 'sms-sender claims', proc: 'sms-sender', writes: 'message_claims' },
  { label: 'sms-sender status writes', proc: 'sms-sender', writes: 'message_status' },
  { label: 'gateway Twilio callbacks', proc: 'gateway', writes: 'message_status' },
] as const;

type GroupScrape = Record<string, { sum: number; count: number } | undefined>;

/** One scrape of every P2 group-size histogram (sms-sender's health port, the gateway). */
async function groupSizes(c: Ctx): Promise<GroupScrape> {
  const [gateway, sender] = await Promise.all([
    metricsText(gatewayUrl(c)),
    metricsText(`http://127.0.0.1:${c.env.ports.health['sms-sender']}`),
  ]);
  const out: GroupScrape = {};
  for (const g of P2_GROUPS) {
    out[g.label] = histogramSumCount(g.proc === 'gateway' ? gateway : sender, 'hatch_write_group_size', `writes="${g.writes}"`);
  }
  return out;
}

/**
 * pgbench running `script` for the window, with the CPU of its own PostgreSQL backends
 * (application_name pgbench; pgbench itself is the load generator, like autocannon for Hatch).
 */
async function pgbenchWithCpu(c: Ctx, script: string, clients: number) {
  const w = cpuWindow({ postgres: pgPidsOf(c, c.dbName, 'pgbench') }, { sampleMs: 100 });
  const tps = await pgbenchScript(c.env.dbUrl, script, clients, c.seconds);
  const win = w.end();
  return { tps, cpuPct: win.cpu.postgres ?? Number.NaN, seconds: win.seconds };
}

/** CPU of P1's headline: the gateway and the bench database's PostgreSQL backends. */
const P1_CPU = ['gateway', 'postgres (bench db backends)'];

export async function p1(c: Ctx): Promise<ScenarioResult> {
  const rate: number[] = [];
  const cpuPerSend: number[] = [];
  const accepted: number[] = [];
  const p99Half: number[] = [];
  const groupMean: number[] = [];
  const grouped: number[] = [];
  const groupedCpu: number[] = [];
  const single: number[] = [];
  const singleCpu: number[] = [];
  const windows: CpuWindow[] = [];
  const runs: unknown[] = [];
  const withPgbench = pgbenchAvailable();
  let groupLabel = '';
  c.log('P1 warm-up (2 s of sends)');
  await cannon(c, { seconds: 2, kind: 'mixed' });
  await analyzeAfterWarmUp(c.probe);
  for (let i = 0; i < c.runs; i++) {
    const before = await batchSizes(c);
    const w = cpuWindow(watched(c));
    const max = await cannon(c, { seconds: c.seconds, kind: 'mixed' });
    const win = w.end();
    windows.push(win);
    const g = windowMean(before, await batchSizes(c));
    groupMean.push(g);
    rate.push(max.rate);
    accepted.push(max.accepted);
    const cps = cpuMsPerUnit(win.cpu, P1_CPU, win.seconds, max.accepted);
    cpuPerSend.push(cps);
    const half = await cannon(c, { seconds: c.seconds, kind: 'mixed', overallRate: max.rate / 2 });
    p99Half.push(half.p99);
    // Baselines: pgbench writing the same rows, (a) in groups of the size the group commit reached
    // with as many sends in flight as autocannon keeps (16 connections), (b) one send per commit.
    let gb = { tps: Number.NaN, cpuPct: Number.NaN, seconds: Number.NaN };
    let sb = { tps: Number.NaN, cpuPct: Number.NaN, seconds: Number.NaN };
    const group = Number.isFinite(g) ? Math.max(1, Math.round(g)) : 1;
    const clients = Math.max(1, Math.round(CONNECTIONS / group));
    if (withPgbench) {
      gb = await pgbenchWithCpu(c, sendScript(group), clients);
      sb = await pgbenchWithCpu(c, sendScript(1), CONNECTIONS);
    }
    groupLabel = `groups of ${group}, ${clients} client${clients > 1 ? 's' : ''}`;
    grouped.push(gb.tps * group);
    groupedCpu.push(cpuMsPerUnit({ postgres: gb.cpuPct }, ['postgres'], gb.seconds, gb.tps * group * gb.seconds));
    single.push(sb.tps);
    singleCpu.push(cpuMsPerUnit({ postgres: sb.cpuPct }, ['postgres'], sb.seconds, sb.tps * sb.seconds));
    runs.push({ max, half, groupMean: g, cpuMsPerSend: cps, cpu: win, pgbenchGrouped: { group, clients, ...gb }, pgbenchOnePerCommit: sb });
    c.log(
      `P1 run ${i + 1}: Hatch ${max.rate.toFixed(0)}/s (non-2xx ${max.non2xx}), ${cps.toFixed(2)} CPU ms/send, mean group ${g.toFixed(1)}, p99 at half rate ${half.p99} ms; ` +
        `pgbench same rows ${groupLabel}: ${(gb.tps * group).toFixed(0)} sends/s; one send per commit: ${sb.tps.toFixed(0)}/s`,
    );
  }
  // SMS accepted here are not for P2: their jobs are purged and their rows closed.
  await purgeStream(`${c.env.prefix.toUpperCase()}_JOBS`);
  await c.sql`UPDATE messages SET status = 'failed', error_code = 'BENCH_P1' WHERE status IN ('queued', 'sending')`;
  const cpu = cpuSummary(windows);
  const hatchCpu = { unit: 'ms/send', value: summarize(cpuPerSend), of: 'gateway + PostgreSQL' };
  const pgCpu = (v: number[]) => ({ unit: 'ms/send', value: summarize(v), of: 'PostgreSQL' });
  const measure = `accepted sends/s (POST /api/send_message, half chat half SMS, ${CONNECTIONS} connections; workers not running)`;
  return {
    rows: [
      {
        scenario: 'P1',
        measure,
        unit: '/s',
        value: summarize(rate),
        cpu: hatchCpu,
        ...(withPgbench
          ? { raw: { label: `pgbench, the same rows, ${groupLabel} (sends/s)`, value: summarize(grouped), cpu: pgCpu(groupedCpu) } }
          : {}),
        goal: { text: '≥ 70 % of pgbench at the same group size', on: 'ratio', direction: 'atLeast', threshold: 0.7 },
        note:
          `mean group commit ${summarize(groupMean).median.toFixed(1)} sends per statement (hatch_send_batch_size over the window). ` +
          `${perUnitNote(windows, accepted, [...P1_CPU, 'realtime-bridge', 'nats-server'], 'ms/send')} (bridge and NATS relay the sends' events). ` +
          `bottleneck ${cpu.bottleneck}. ${cpuNote(cpu)}`,
      },
      {
        scenario: 'P1',
        measure: 'p99 latency at half the max rate',
        unit: 'ms',
        value: summarize(p99Half),
        goal: { text: '≤ 10 ms', on: 'measure', direction: 'atMost', threshold: 10 },
      },
      ...(withPgbench
        ? [
            {
              scenario: 'P1',
              measure: 'the same, against one send per commit (what the gateway would do without its group commit)',
              unit: '/s',
              value: summarize(rate),
              cpu: hatchCpu,
              raw: {
                label: `pgbench, the same rows, one send per commit, ${CONNECTIONS} clients (sends/s)`,
                value: summarize(single),
                cpu: pgCpu(singleCpu),
              },
            } satisfies Row,
          ]
        : []),
    ],
    detail: { runs, cpu },
  };
}

/* ------------------------------------------------------------------------------------------ */
/* P2: end-to-end SMS/s                                                                       */
/* ------------------------------------------------------------------------------------------ */

/** Every process of the SMS path (P2's CPU per SMS): the sum is the figure. */
const P2_HATCH_CPU = ['gateway', 'sms-sender', 'realtime-bridge', 'provider-emulator', 'postgres (bench db backends)', 'nats-server'];
const P2_PEER_CPU = ['peer API', 'peer worker', 'provider-emulator', 'postgres (peer db backends)', 'redis-server'];

interface FlowCounts {
  total: number;
  sent: number;
  delivered: number;
}

/**
 * One P2 window on one flow: SMS-only sends for the window, then until every SMS the window
 * created is `sent` (or further): the rate; then until every one is `delivered` (the emulator's
 * status callbacks handled too): the CPU window ends there, so CPU per SMS covers the whole flow.
 */
async function smsWindow(
  c: Ctx,
  url: string,
  counts: (since: Date) => Promise<FlowCounts>,
  watch: Watched,
  cpuNames: readonly string[],
  seconds = c.seconds,
) {
  const since = new Date(Date.now() - 1000);
  const t0 = performance.now();
  const w = cpuWindow(watch, { sampleMs: 500 });
  const intake = await cannon(c, { url, seconds, kind: 'sms' });
  let n: FlowCounts = { total: 0, sent: 0, delivered: 0 };
  let tSent = 0;
  let tDelivered = 0;
  await waitUntil(
    async () => {
      n = await counts(since);
      if (!tSent && n.total > 0 && n.sent >= n.total) tSent = performance.now();
      if (tSent && n.delivered >= n.total) tDelivered = performance.now();
      return tDelivered > 0;
    },
    120_000,
    'every accepted SMS to be sent and delivered',
    100,
  ).catch(() => undefined);
  const win = w.end();
  const took = ((tSent || performance.now()) - t0) / 1000;
  return {
    intake: { accepted: intake.accepted, rate: intake.rate, non2xx: intake.non2xx, errors: intake.errors, p99: intake.p99 },
    ...n,
    seconds: took,
    rate: n.sent / took,
    cpuMsPerSms: cpuMsPerUnit(win.cpu, cpuNames, win.seconds, n.sent),
    complete: tSent > 0,
    allDelivered: tDelivered > 0,
    cpu: win,
  };
}

type SmsRun = Awaited<ReturnType<typeof smsWindow>>;

const PEERS = [
  { key: 'bullmq', label: 'BullMQ + Redis' },
  { key: 'pg-boss', label: 'pg-boss' },
] as const;

interface PeerFlow {
  label: string;
  url: string;
  procs: Proc[];
  counts(since: Date): Promise<FlowCounts>;
  /** its database's statistics after the warm-up (analyzeAfterWarmUp) */
  analyze(): Promise<void>;
  watch: Watched;
  close(): Promise<void>;
}

/** A peer's API and worker processes (bench/peers/) on a fresh database of their own. */
async function startPeerFlow(c: Ctx, peer: (typeof PEERS)[number]): Promise<PeerFlow> {
  const db = await createPlainDb(`${c.dbName}_${peer.key.replace('-', '')}`);
  const port = await freePort();
  const queuePrefix = `${c.env.prefix.toLowerCase()}-${peer.key}`;
  const env = {
    PEER_QUEUE: peer.key,
    DATABASE_URL: db.url,
    REDIS_URL: REDIS_URL,
    PEER_QUEUE_PREFIX: queuePrefix,
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    HATCH_API_TOKEN: TOKEN,
    TWILIO_ACCOUNT_SID: TWILIO.sid,
    TWILIO_AUTH_TOKEN: TWILIO.token,
    TWILIO_PHONE_NUMBER: TWILIO.phone,
    TWILIO_API_URL: `http://127.0.0.1:${c.env.ports.emulator}`,
    NODE_ENV: 'production',
  };
  const sql = benchSql(db.url, 2);
  const procs: Proc[] = [];
  const close = async () => {
    await Promise.all(procs.map((p) => p.stop('SIGTERM', 10_000)));
    await sql.end({ timeout: 5 });
    await db.drop().catch(() => undefined);
    if (peer.key === 'bullmq') await deleteRedisKeys(`${queuePrefix}:`).catch(() => undefined);
  };
  try {
    // the API creates the tables; the worker starts once they exist
    procs.push(spawnTs(`${peer.key} API`, 'bench/peers/sms-api.ts', [], { env }));
    await procs[0]?.nextMessage(60_000);
    procs.push(spawnTs(`${peer.key} worker`, 'bench/peers/sms-worker.ts', [], { env }));
    await procs[1]?.nextMessage(60_000);
  } catch (err) {
    await close();
    throw err;
  }
  const [api, worker] = procs as [Proc, Proc];
  return {
    label: peer.label,
    url: `http://127.0.0.1:${port}`,
    procs,
    async counts(since) {
      const [r] = await sql<FlowCounts[]>`
        SELECT count(*)::int AS total, (count(*) FILTER (WHERE status IN ('sent', 'delivered')))::int AS sent,
          (count(*) FILTER (WHERE status = 'delivered'))::int AS delivered
        FROM messages WHERE created_at >= ${since}`;
      return r ?? { total: 0, sent: 0, delivered: 0 };
    },
    analyze: () => analyzeAfterWarmUp(sql),
    watch: {
      'peer API': api.pid,
      'peer worker': worker.pid,
      'provider-emulator': c.stack.get('provider-emulator')?.pid ?? -1,
      'postgres (peer db backends)': pgPidsOf(c, db.name),
      'redis-server': () => (peer.key === 'bullmq' ? pidsByComm('redis-server') : []),
      'bench (load generator)': process.pid,
    },
    close,
  };
}

async function hatchCounts(c: Ctx, since: Date): Promise<FlowCounts> {
  const [r] = await c.probe<FlowCounts[]>`
    SELECT count(*)::int AS total, (count(*) FILTER (WHERE status IN ('sent', 'delivered')))::int AS sent,
      (count(*) FILTER (WHERE status = 'delivered'))::int AS delivered
    FROM messages WHERE channel = 'sms' AND created_at >= ${since}`;
  return r ?? { total: 0, sent: 0, delivered: 0 };
}

export async function p2(c: Ctx): Promise<ScenarioResult> {
  const hatch: SmsRun[] = [];
  const peerRuns: Record<string, SmsRun[]> = {};
  /** mean items per grouped statement in each Hatch window, by group */
  const groups: Record<string, number[]> = {};
  const sender = await startService('sms-sender', c.env, { nodeArgs: c.profArgs('sms-sender') });
  c.stack.set('sms-sender', sender.proc);
  const flows: PeerFlow[] = [];
  try {
    for (const peer of PEERS) {
      const f = await startPeerFlow(c, peer);
      flows.push(f);
      peerRuns[f.label] = [];
      // warm-up: a second of sends through the whole flow
      await smsWindow(c, f.url, (s) => f.counts(s), f.watch, P2_PEER_CPU, 1);
      await f.analyze();
    }
    // Hatch's warm-up, the same second through its whole flow
    await smsWindow(c, gatewayUrl(c), (s) => hatchCounts(c, s), watched(c), P2_HATCH_CPU, 1);
    await analyzeAfterWarmUp(c.probe);
    // Runs interleaved (Hatch, then each peer), so a change in the machine's load hits all alike.
    for (let i = 0; i < c.runs; i++) {
      const g0 = await groupSizes(c);
      const h = await smsWindow(c, gatewayUrl(c), (s) => hatchCounts(c, s), watched(c), P2_HATCH_CPU);
      hatch.push(h);
      const g1 = await groupSizes(c);
      for (const g of P2_GROUPS) (groups[g.label] ??= []).push(windowMean(g0[g.label], g1[g.label]));
      c.log(
        `P2 run ${i + 1}: Hatch ${h.total} accepted at ${h.intake.rate.toFixed(0)}/s, ${h.sent} sent in ${h.seconds.toFixed(1)} s → ${h.rate.toFixed(0)}/s, ${h.cpuMsPerSms.toFixed(2)} CPU ms/SMS`,
      );
      // next run starts from an empty backlog
      await c.sql`UPDATE messages SET status = 'failed', error_code = 'BENCH_P2' WHERE status IN ('queued', 'sending')`;
      await purgeStream(`${c.env.prefix.toUpperCase()}_JOBS`);
      for (const f of flows) {
        const r = await smsWindow(c, f.url, (s) => f.counts(s), f.watch, P2_PEER_CPU);
        peerRuns[f.label]?.push(r);
        c.log(
          `P2 run ${i + 1}: ${f.label} ${r.total} accepted at ${r.intake.rate.toFixed(0)}/s, ${r.sent} sent in ${r.seconds.toFixed(1)} s → ${r.rate.toFixed(0)}/s, ${r.cpuMsPerSms.toFixed(2)} CPU ms/SMS`,
        );
      }
    }
  } finally {
    c.stack.delete('sms-sender');
    await sender.proc.stop('SIGTERM', 10_000);
    for (const f of flows) await f.close().catch(() => undefined);
  }
  const cpu = cpuSummary(hatch.map((r) => r.cpu));
  const hatchRate = summarize(hatch.map((r) => r.rate));
  const hatchCpu = { unit: 'ms/SMS', value: summarize(hatch.map((r) => r.cpuMsPerSms)), of: 'all processes' };
  const peerRows: Row[] = Object.entries(peerRuns).map(([label, rs]) => {
    const pc = cpuSummary(rs.map((r) => r.cpu));
    return {
      scenario: 'P2',
      measure: `end-to-end SMS/s against the same flow on ${label}`,
      unit: '/s',
      value: hatchRate,
      cpu: hatchCpu,
      raw: {
        label: `${label} (SMS/s)`,
        value: summarize(rs.map((r) => r.rate)),
        cpu: { unit: 'ms/SMS', value: summarize(rs.map((r) => r.cpuMsPerSms)), of: 'all processes' },
      },
      goal: { text: 'ahead (≥ 100 %)', on: 'ratio', direction: 'atLeast', threshold: 1 },
      note: `${perUnitNote(
        rs.map((r) => r.cpu),
        rs.map((r) => r.sent),
        P2_PEER_CPU,
        'ms/SMS',
      )}. ${label} window: ${cpuNote(pc)}`,
    };
  });
  return {
    rows: [
      {
        scenario: 'P2',
        measure: 'end-to-end SMS/s (POST → job → worker → Twilio SDK → emulator → sent; CPU until every status callback is handled)',
        unit: '/s',
        value: hatchRate,
        cpu: hatchCpu,
        goal: { text: '≥ 1,000/s', on: 'measure', direction: 'atLeast', threshold: 1000 },
        note: `${perUnitNote(
          hatch.map((r) => r.cpu),
          hatch.map((r) => r.sent),
          P2_HATCH_CPU,
          'ms/SMS',
        )}. bottleneck ${cpu.bottleneck}. ${cpuNote(cpu)}. Mean items per grouped statement (hatch_write_group_size over each window, median of runs): ${P2_GROUPS.map(
          (g) => `${g.label} ${summarize(groups[g.label] ?? []).median.toFixed(1)}`,
        ).join(', ')}`,
      },
      {
        scenario: 'P2',
        measure: 'CPU per end-to-end SMS, all processes',
        unit: 'ms',
        value: hatchCpu.value,
        goal: { text: '≤ 2 ms', on: 'measure', direction: 'atMost', threshold: 2 },
      },
      ...peerRows,
    ],
    detail: { hatch, peers: peerRuns, cpu, groups },
  };
}

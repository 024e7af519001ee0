/**
 * P1 (accepted sends/s against raw INSERT tps) and P2 (end-to-end SMS/s against raw JetStream
 * publish + consume): both drive POST /api/send_message with autocannon.
 */
import autocannon from 'autocannon';
import { summarize, type Row } from '../lib/report.js';
import { cpuWindow, sleep, spawnTs, waitUntil, type CpuWindow } from '../lib/procs.js';
import { insertTps, NATS_URL, pgbenchAvailable, pgbenchScript, purgeStream, SEND_TX_SCRIPT } from '../lib/infra.js';
import { startService, TOKEN } from '../lib/stack.js';
import { cpuNote, cpuSummary, gatewayUrl, watched, type Ctx, type ScenarioResult } from './context.js';

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

async function cannon(c: Ctx, opts: { seconds: number; kind: 'mixed' | 'sms'; overallRate?: number; connections?: number }) {
  const r = await autocannon({
    url: gatewayUrl(c),
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

export async function p1(c: Ctx): Promise<ScenarioResult> {
  const raw: number[] = [];
  const rate: number[] = [];
  const p99Half: number[] = [];
  const sendTx: number[] = [];
  const windows: CpuWindow[] = [];
  const runs: unknown[] = [];
  let tool = '';
  const withSendTx = pgbenchAvailable();
  c.log('P1 warm-up (2 s of sends)');
  await cannon(c, { seconds: 2, kind: 'mixed' });
  for (let i = 0; i < c.runs; i++) {
    const r = await insertTps(c.env.dbUrl, 'bench_raw_plain', CONNECTIONS, c.seconds);
    tool = r.tool;
    raw.push(r.tps);
    const tx = withSendTx ? await pgbenchScript(c.env.dbUrl, SEND_TX_SCRIPT, CONNECTIONS, c.seconds) : Number.NaN;
    sendTx.push(tx);
    const w = cpuWindow(watched(c));
    const max = await cannon(c, { seconds: c.seconds, kind: 'mixed' });
    windows.push(w.end());
    rate.push(max.rate);
    const half = await cannon(c, { seconds: c.seconds, kind: 'mixed', overallRate: max.rate / 2 });
    p99Half.push(half.p99);
    runs.push({ rawInsertTps: r.tps, sendTxTps: tx, max, half });
    c.log(
      `P1 run ${i + 1}: raw ${r.tps.toFixed(0)} tps, send-shaped tx in pgbench ${tx.toFixed(0)} tps, Hatch ${max.rate.toFixed(0)}/s (non-2xx ${max.non2xx}), p99 at half rate ${half.p99} ms`,
    );
  }
  // SMS accepted here are not for P2: their jobs are purged and their rows closed.
  await purgeStream(`${c.env.prefix.toUpperCase()}_JOBS`);
  await c.sql`UPDATE messages SET status = 'failed', error_code = 'BENCH_P1' WHERE status IN ('queued', 'sending')`;
  const cpu = cpuSummary(windows);
  const rawLabel = `${tool} single-row INSERT tps, ${CONNECTIONS} clients`;
  return {
    rows: [
      {
        scenario: 'P1',
        measure: `accepted sends/s (POST /api/send_message, half chat half SMS, ${CONNECTIONS} connections; workers not running)`,
        unit: '/s',
        value: summarize(rate),
        raw: { label: rawLabel, value: summarize(raw) },
        goal: { text: '≥ 70 % of raw', on: 'ratio', direction: 'atLeast', threshold: 0.7 },
        note: `bottleneck ${cpu.bottleneck}. ${cpuNote(cpu)}`,
      },
      {
        scenario: 'P1',
        measure: 'p99 latency at half the max rate',
        unit: 'ms',
        value: summarize(p99Half),
        goal: { text: '≤ 10 ms', on: 'measure', direction: 'atMost', threshold: 10 },
      },
      ...(withSendTx
        ? [
            {
              scenario: 'P1',
              measure:
                'diagnostic: one send written alone in pgbench (the accept statement for one message, journal trigger + NOTIFY; no Node, no group commit)',
              unit: 'tps',
              value: summarize(sendTx),
              raw: { label: rawLabel, value: summarize(raw) },
              note: `Hatch accepted sends/s ÷ this = ${((summarize(rate).median / summarize(sendTx).median) * 100).toFixed(0)} %: above 100 % is what the gateway's group commit buys over one statement per send`,
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

export async function p2(c: Ctx): Promise<ScenarioResult> {
  const raw: number[] = [];
  const rate: number[] = [];
  const windows: CpuWindow[] = [];
  const runs: unknown[] = [];
  const n = 10_000;
  const sender = await startService('sms-sender', c.env, { nodeArgs: c.profArgs('sms-sender') });
  c.stack.set('sms-sender', sender.proc);
  try {
    for (let i = 0; i < c.runs; i++) {
      const js = spawnTs('js-raw', 'bench/lib/js-raw.ts', [], {
        env: { NATS_URL, BENCH_PREFIX: `${c.env.prefix}R${i}`, BENCH_N: String(n) },
      });
      const jr = (await js.nextMessage(120_000)) as { rate: number; publishRate: number; consumed: number };
      // it deletes its stream and exits by itself; a signal only if it does not within a bound
      await Promise.race([js.exited, sleep(15_000)]);
      await js.stop();
      raw.push(jr.rate);

      const since = new Date();
      const t0 = performance.now();
      const w = cpuWindow(watched(c));
      const sent = await cannon(c, { seconds: c.seconds, kind: 'sms' });
      let done = 0;
      let total = 0;
      let tDone = 0;
      // Denominator: every SMS row this run created (requests still in flight when autocannon
      // stopped included); done when each of them reached sent (or delivered, after the callback).
      await waitUntil(
        async () => {
          const [row] = await c.sql<{ total: number; done: number }[]>`
          SELECT count(*)::int AS total, (count(*) FILTER (WHERE status IN ('sent', 'delivered')))::int AS done
          FROM messages WHERE channel = 'sms' AND created_at >= ${since}`;
          total = row?.total ?? 0;
          done = row?.done ?? 0;
          if (total > 0 && done >= total) tDone = performance.now();
          return tDone > 0;
        },
        90_000,
        'every accepted SMS to reach sent',
        200,
      ).catch(() => undefined);
      windows.push(w.end());
      const seconds = ((tDone || performance.now()) - t0) / 1000;
      rate.push(done / seconds);
      runs.push({
        jetstreamRaw: jr,
        accepted: sent.accepted,
        rows: total,
        intakeRate: sent.rate,
        sent: done,
        seconds,
        complete: tDone > 0,
      });
      c.log(
        `P2 run ${i + 1}: raw JetStream ${jr.rate.toFixed(0)}/s; Hatch ${total} accepted at ${sent.rate.toFixed(0)}/s, ${done} sent in ${seconds.toFixed(1)} s → ${(done / seconds).toFixed(0)}/s`,
      );
      // next run starts from an empty backlog
      await c.sql`UPDATE messages SET status = 'failed', error_code = 'BENCH_P2' WHERE status IN ('queued', 'sending')`;
      await purgeStream(`${c.env.prefix.toUpperCase()}_JOBS`);
    }
  } finally {
    c.stack.delete('sms-sender');
    await sender.proc.stop('SIGTERM', 10_000);
  }
  const cpu = cpuSummary(windows);
  return {
    rows: [
      {
        scenario: 'P2',
        measure: 'end-to-end SMS/s (POST → emulator → status sent)',
        unit: '/s',
        value: summarize(rate),
        raw: { label: 'JetStream publish + pull-consume, one Node process', value: summarize(raw) },
        goal: { text: '≥ 3,000/s', on: 'measure', direction: 'atLeast', threshold: 3000 },
        note: `bottleneck ${cpu.bottleneck}. ${cpuNote(cpu)}`,
      },
    ],
    detail: { runs, cpu },
  };
}

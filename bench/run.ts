/**
 * `pnpm bench [-- --only P1,P3] [--quick] [--runs N]`: Hatch's benchmark (issue 10).
 *
 * One run: machine facts → a fresh migrated database + its own NATS prefix → the services as child
 * processes → each scenario with its raw limit measured alongside → the table printed and saved to
 * bench/results/<date>.{json,md} → services stopped, streams deleted, database dropped (also on
 * failure and on Ctrl+C).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { markdownTable, parseArgs, type Row } from './lib/report.js';
import { killAllSync, ROOT, stopAll, type Proc } from './lib/procs.js';
import {
  BENCH_APP,
  benchSql,
  createBenchDb,
  createRawTables,
  deleteStreams,
  dropDatabasesLike,
  pgbenchAvailable,
  versions,
  type BenchDb,
} from './lib/infra.js';
import { allocatePorts, startService, type ServiceName, type StackEnvOpts } from './lib/stack.js';
import { SCENARIOS, type Ctx, type PgBackend, type ScenarioResult } from './scenarios/index.js';

/** The commit measured, and whether the work tree differed from it (a result names its code). */
function codeVersion(): string {
  try {
    const git = (...a: string[]) => execFileSync('git', a, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = git('status', '--porcelain', '--untracked-files=no', '--', '.', ':!bench/results') !== '';
    return `${git('rev-parse', '--short=12', 'HEAD')}${dirty ? ' with uncommitted changes' : ''}`;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

const args = parseArgs(process.argv.slice(2));
const wanted = Object.keys(SCENARIOS).filter((k) => !args.only || args.only.includes(k)) as Array<keyof typeof SCENARIOS>;
const started = new Date();
const log = (msg: string) => process.stderr.write(`[bench ${((Date.now() - started.getTime()) / 1000).toFixed(0).padStart(4)} s] ${msg}\n`);

let db: BenchDb | undefined;
const prefix = `BENCH${randomBytes(3).toString('hex').toUpperCase()}`;
let cleaning: Promise<void> | undefined;

async function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await stopAll().catch(() => killAllSync());
    killAllSync();
    await deleteStreams(prefix).catch((err: Error) => log(`could not delete streams ${prefix}*: ${err.message}`));
    await db?.drop().catch((err: Error) => log(`could not drop ${db?.name}: ${err.message}`));
    if (db) await dropDatabasesLike(`${db.name}_`).catch((err: Error) => log(`could not drop the peers' databases: ${err.message}`));
  })();
  return cleaning;
}

process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    log(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}
// Whole-run backstop (a full run with the peers takes ~10–15 minutes on 2 cores; loaded machines get some slack).
const HARD_LIMIT_MS = (args.quick ? 10 : 30) * 60_000;
setTimeout(() => {
  log('hard time limit reached: cleaning up');
  void cleanup().finally(() => process.exit(2));
}, HARD_LIMIT_MS).unref();

function machine() {
  const cpus = os.cpus();
  let pgbench = 'not installed';
  try {
    pgbench = execFileSync('pgbench', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    /* absent */
  }
  return {
    cpuCount: cpus.length,
    cpuModel: cpus[0]?.model ?? '?',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    loadAvgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
    pgbench,
  };
}

/** BENCH_CPU_PROF=gateway,realtime-bridge → those services run with --cpu-prof (profiles in bench/tmp/prof). */
function profArgs(name: string): string[] {
  const wanted = (process.env.BENCH_CPU_PROF ?? '').split(',');
  return wanted.includes(name) ? ['--cpu-prof', `--cpu-prof-dir=${path.join(ROOT, 'bench', 'tmp', 'prof')}`] : [];
}

async function main(): Promise<void> {
  const facts = { ...machine(), ...(await versions()), code: codeVersion() };
  log(
    `machine: ${facts.cpuCount} × ${facts.cpuModel}, Node ${facts.node}, PostgreSQL ${facts.postgres}, NATS ${facts.nats}, load ${facts.loadAvgAtStart.join(' ')}`,
  );
  log(
    `scenarios ${wanted.join(', ')}; ${args.runs} run(s) each${args.quick ? ' (quick)' : ''}; baselines by ${pgbenchAvailable() ? 'pgbench' : 'nothing: pgbench is not installed (P1 without its baselines, P3 fails)'}`,
  );
  db = await createBenchDb();
  await createRawTables(db.url);
  log(`database ${db.name} migrated; NATS prefix ${prefix}`);
  const env: StackEnvOpts = { dbUrl: db.url, prefix, ports: await allocatePorts(), callbackDelayMs: 20 };
  const stack = new Map<string, Proc>();
  const needStack = wanted.some((k) => k !== 'P7');
  const stackReady: Record<string, number> = {};
  if (needStack) {
    // sms-sender is started by P2 only: P1 measures intake, not intake plus the SMS pipeline.
    const order: ServiceName[] = ['provider-emulator', 'realtime-bridge', 'gateway'];
    const up = await Promise.allSettled(
      order.map((name) => startService(name, env, { ...(name === 'gateway' ? { nofile: 200_000 } : {}), nodeArgs: profArgs(name) })),
    );
    up.forEach((r, i) => {
      const name = order[i] as string;
      if (r.status === 'fulfilled') {
        stack.set(name, r.value.proc);
        stackReady[name] = r.value.readyMs;
      }
    });
    const failed = up.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    log(
      `stack up: ${Object.entries(stackReady)
        .map(([n, ms]) => `${n} ${(ms / 1000).toFixed(1)} s`)
        .join(', ')}`,
    );
  }
  // `sql` writes as an application would (P3's and P6's writers): its backends count as the system's.
  // `probe` polls and counts for the bench itself: application_name BENCH_APP, never counted.
  const sql = postgres(db.url, { max: 16, onnotice: () => {} });
  const probe = benchSql(db.url, 2);
  const conversationId = '00000000-0000-4000-8000-0000000be7c1';
  await sql`INSERT INTO conversations (id, participants, channel) VALUES (${conversationId}, ${['bench', 'me']}, 'chat')`;
  // CPU of PostgreSQL is counted for the backends of the bench database (and the peers' databases,
  // named after it) only: the server is shared.
  const pgPids: number[] = [];
  const pgBackends: PgBackend[] = [];
  const benchDb = db.name;
  const pgTimer = setInterval(() => {
    void probe<PgBackend[]>`
      SELECT pid, datname AS db, application_name AS app FROM pg_stat_activity
      WHERE (datname = ${benchDb} OR datname LIKE ${`${benchDb}\\_%`}) AND application_name <> ${BENCH_APP}`
      .then((rows) => {
        pgBackends.splice(0, pgBackends.length, ...rows);
        pgPids.splice(0, pgPids.length, ...rows.filter((r) => r.db === benchDb).map((r) => r.pid));
      })
      .catch(() => undefined);
  }, 250);
  pgTimer.unref();
  const ctx: Ctx = {
    profArgs,
    pgPids,
    pgBackends,
    quick: args.quick,
    runs: args.runs,
    seconds: args.quick ? 3 : 5,
    env,
    dbName: db.name,
    stack,
    sql,
    probe,
    conversationId,
    log,
    detail: {},
  };

  const rows: Row[] = [];
  const details: Record<string, unknown> = {};
  const failures: Record<string, string> = {};
  try {
    for (const k of wanted) {
      const t0 = performance.now();
      log(`${k} …`);
      try {
        const r: ScenarioResult = await SCENARIOS[k](ctx);
        rows.push(...r.rows);
        details[k] = { ...(r.detail as object), seconds: (performance.now() - t0) / 1000 };
      } catch (err) {
        failures[k] = (err as Error).message.slice(0, 4000);
        log(`${k} FAILED: ${(err as Error).message.slice(0, 2000)}`);
      }
    }
  } finally {
    clearInterval(pgTimer);
    await Promise.all([sql.end({ timeout: 5 }), probe.end({ timeout: 5 })]);
  }
  const order = ['P1', 'P2', 'P3', 'P4', 'P5', 'P6', 'P7'];
  rows.sort((a, b) => order.indexOf(a.scenario) - order.indexOf(b.scenario));
  const totalSeconds = (Date.now() - started.getTime()) / 1000;
  const table = markdownTable(rows);
  const notes = rows.filter((r) => r.note).map((r) => `- ${r.scenario} (${r.measure}): ${r.note}`);
  const stamp = started.toISOString().replace(/:/g, '-').replace(/\..*$/, '');
  const md = [
    `# Hatch benchmark ${started.toISOString()}`,
    '',
    `Machine: ${facts.cpuCount} × ${facts.cpuModel}, ${facts.memGiB} GiB, ${facts.os}; Node ${facts.node}; PostgreSQL ${facts.postgres} (synchronous_commit ${facts.synchronousCommit}, autovacuum ${facts.autovacuum}); NATS ${facts.nats}; ${facts.pgbench}.`,
    `Code: ${facts.code}. Load average at start: ${facts.loadAvgAtStart.join(' ')} (${facts.cpuCount} cores).`,
    `Mode: ${args.quick ? 'quick' : 'full'}, ${args.runs} run(s) per scenario (median, min–max), ${ctx.seconds} s windows; whole run ${totalSeconds.toFixed(0)} s.`,
    '',
    table,
    '',
    ...(notes.length ? ['Notes:', '', ...notes, ''] : []),
    ...(Object.keys(failures).length
      ? ['Failed scenarios:', '', ...Object.entries(failures).map(([k, m]) => `- ${k}: ${m.split('\n')[0]}`), '']
      : []),
  ].join('\n');
  process.stdout.write(`\n${md}\n`);
  const dir = path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const base = path.join(dir, `${stamp}${args.quick ? '-quick' : ''}${args.only ? `-${args.only.join('')}` : ''}`);
  fs.writeFileSync(
    `${base}.json`,
    `${JSON.stringify({ started: started.toISOString(), totalSeconds, args, machine: facts, stackReadyMs: stackReady, rows, details, failures }, null, 2)}\n`,
  );
  fs.writeFileSync(`${base}.md`, `${md}\n`);
  log(`saved ${path.relative(ROOT, base)}.{json,md}`);
  if (Object.keys(failures).length) process.exitCode = 1;
}

try {
  await main();
} catch (err) {
  log(`bench failed: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
  log('cleaned up (services stopped, streams deleted, database dropped)');
}

/**
 * `pnpm soak [-- --duration 1800 --rate 4 --seed 1 --fault-min 10 --fault-max 30 --drain 90 --min-each 0]`
 * (issue 17): Hatch on a 3-node NATS cluster with every service replicated, under load and
 * faults, then the oracle; the report goes to soak/results/<date>.md (and the exit code is 1
 * when the run broke a promise). Everything it starts (its PostgreSQL, its NATS nodes, the
 * services) dies with it, Ctrl+C included.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '@hatch/testing';
import { markdownReport } from './lib/report.js';
import { DEFAULTS, runSoak, verdict, type SoakOptions } from './lib/soak.js';

function parseArgs(argv: string[]): Omit<SoakOptions, 'log'> {
  const o = { ...DEFAULTS };
  const num = (flag: string, v: string | undefined) => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n <= 0) throw new Error(`${flag} needs a positive number`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--') continue;
    if (a === '--duration') o.durationS = num(a, v);
    else if (a === '--rate') o.rate = num(a, v);
    else if (a === '--seed') o.seed = num(a, v);
    else if (a === '--fault-min') o.faultMinS = num(a, v);
    else if (a === '--fault-max') o.faultMaxS = num(a, v);
    else if (a === '--drain') o.drainS = num(a, v);
    else if (a === '--min-each') o.minEach = Math.floor(num(a, v));
    else throw new Error(`unknown option ${a} (--duration S, --rate N, --seed N, --fault-min S, --fault-max S, --drain S, --min-each N)`);
    i++;
  }
  if (o.faultMaxS < o.faultMinS) throw new Error('--fault-max must be at least --fault-min');
  return o;
}

const teardowns: Array<() => unknown> = [];
const t = { teardown: (fn: () => unknown) => void teardowns.push(fn) };
async function cleanup(): Promise<void> {
  for (const fn of teardowns.splice(0).reverse()) {
    try {
      await fn();
    } catch {
      // best effort: every spawned server also has its watchdog
    }
  }
}

const started = Date.now();
const log = (msg: string) => process.stderr.write(`[soak ${((Date.now() - started) / 1000).toFixed(0).padStart(5)} s] ${msg}\n`);
let options: Omit<SoakOptions, 'log'>;
try {
  options = parseArgs(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(2);
}
try {
  const result = await runSoak(t, { ...options, log });
  const machine = `Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}.`;
  const dir = path.join(REPO_ROOT, 'soak', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${new Date(result.startedAt).toISOString().replace(/[:.]/g, '-').slice(0, 19)}.md`);
  fs.writeFileSync(file, markdownReport(result, machine));
  const bad = verdict(result);
  log(`report: ${path.relative(REPO_ROOT, file)}`);
  log(bad.length ? `FAIL: ${bad.join('; ')}` : 'PASS');
  await cleanup();
  process.exit(bad.length ? 1 : 0);
} catch (err) {
  log(`soak failed: ${(err as Error).stack ?? String(err)}`);
  await cleanup();
  process.exit(1);
}

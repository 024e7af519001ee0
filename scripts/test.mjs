#!/usr/bin/env node
/**
 * `pnpm test`: every tap test file against real PostgreSQL and NATS, in a run of its own
 * (HATCH_TEST_RUN_ID names the run's template and databases, dropped afterwards), ending with
 * the plain line `N passed, N failed` that CI reads. A "test" is one t.test() in a file; a file
 * that fails outside any test (crash, teardown error) counts as one failure.
 * Extra arguments go to tap (e.g. `pnpm test services/gateway/test/health.test.ts`).
 *
 * Before anything runs, the outside tools the tests use (Chromium, nginx, shellcheck, …) are
 * checked and, where it can, installed (scripts/test-tools.mjs); when one is missing and cannot
 * be installed, nothing runs and the run counts as one failure.
 *
 * Coverage (`pnpm test --coverage`): every Node process the run starts (test files, and the
 * services they spawn) writes V8 coverage (NODE_V8_COVERAGE); afterwards c8 maps it to the
 * TypeScript sources, prints one line per package and the total, and writes coverage/index.html.
 * c8 rather than tap's own coverage: tap collects it in-process, where tsx's transform (no
 * sourcesContent unless NODE_V8_COVERAGE is set) maps to nothing and tap reports every file at
 * 100 %; and only c8 sees the spawned services, which exit on SIGTERM and so write theirs.
 * Opt-in: it made a sample run half as long again (the README's Coverage section).
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { preflight } from './test-tools.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const runId = randomBytes(4).toString('hex');
const coverage = process.argv.includes('--coverage');
const tapArgs = process.argv.slice(2).filter((a) => a !== '--coverage');
const coverageRaw = path.join(root, '.tap/v8-coverage');
const env = { ...process.env, HATCH_TEST_RUN_ID: runId, FORCE_COLOR: '0' };
if (coverage) {
  fs.rmSync(coverageRaw, { recursive: true, force: true });
  env.NODE_V8_COVERAGE = coverageRaw;
  // tap's own collector (.taprc: disable-coverage) still profiles its `before` script, and prints a table of it
  env._TAPJS_PROCESSINFO_COVERAGE_ = '0';
}
const tsNode = ['--conditions=@hatch/source', '--import', 'tsx'];
const runCli = path.join(root, 'packages/testing/src/run-cli.ts');

function helper(cmd) {
  return spawnSync(process.execPath, [...tsNode, runCli, cmd], { cwd: root, env, stdio: 'inherit' }).status ?? 1;
}

if (!preflight() || helper('prepare') !== 0) {
  process.stdout.write('0 passed, 1 failed\n');
  process.exit(1);
}

const tapBin = path.join(root, 'node_modules/.bin/tap');
buildTapClass();
/**
 * Files that mostly wait (faults held for seconds: stopped processes, restarts) run in a tap run
 * of their own beside the rest, from the start: tap sorts files by path and runs them in that
 * order, so these came last and the run waited for them alone (the short soak, ~130 s, was the
 * last ~2 minutes of a CI run). Their output is printed after the main run's. Only for a whole
 * run (no tap argument): with files or options given, one tap run as asked.
 */
const BESIDE = ['test/soak/short.test.ts'];
/** no tap argument at all: with files or options (--grep, --exclude, --bail, …) one run applies them to every file */
const wholeRun = tapArgs.length === 0;

let passed = 0;
let failed = 0;
let skipped = 0;
let fileFailures = 0;
const failures = [];

/** Counts one tap run's TAP stream, line by line (each line is also printed by the caller). */
function tapCounter() {
  let currentFile = [];
  return (line) => {
    // Each file's own tests sit one level in (4 spaces) in tap's TAP stream.
    const sub = /^ {4}(not )?ok \d+ - (.*?)(?: # (SKIP|TODO)\b.*| # time=.*)?$/.exec(line);
    if (sub) {
      if (sub[3]) skipped++;
      else if (sub[1]) {
        failed++;
        currentFile.push(sub[2]);
      } else passed++;
      return;
    }
    const top = /^(not )?ok \d+ - (\S+)/.exec(line);
    if (top) {
      if (top[1]) {
        if (currentFile.length === 0) fileFailures++;
        failures.push(`${top[2]}${currentFile.length ? `: ${currentFile.join('; ')}` : ' (failed outside a test)'}`);
      }
      currentFile = [];
    }
  };
}

/** One tap run; its lines go to `onLine`. Resolves with its exit code once its output is read. */
function runTap(args, onLine) {
  const child = spawn(tapBin, ['--reporter=tap', ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });
  const rl = readline.createInterface({ input: child.stdout });
  rl.on('line', onLine);
  const closed = new Promise((r) => rl.once('close', r));
  return new Promise((resolve) => child.on('close', (c, signal) => resolve(c ?? (signal ? 1 : 0)))).then(async (c) => {
    await closed;
    return c;
  });
}

function printAndCount() {
  const count = tapCounter();
  return (line) => {
    if (coverage && line === '# No coverage generated') return; // tap's own collector, which is off; c8's report follows
    process.stdout.write(`${line}\n`);
    count(line);
  };
}

let code;
if (wholeRun) {
  // The UI build (tap's `before`) once, before both runs: two runs must not build it at once.
  const ui = spawnSync(process.execPath, [...tsNode, path.join(root, 'web/test/build-ui.ts')], { cwd: root, env, stdio: 'inherit' });
  if (ui.status !== 0) {
    helper('cleanup');
    process.stdout.write('the web UI build failed (web/test/build-ui.ts, above): no test ran\n\n0 passed, 1 failed\n');
    process.exit(1);
  }
  const besideLines = [];
  const beside = runTap(BESIDE, (line) => besideLines.push(line));
  const main = await runTap([...BESIDE.map((f) => `--exclude=${f}`), ...tapArgs], printAndCount());
  const besideCode = await beside;
  process.stdout.write(`# beside the run above, from its start: ${BESIDE.join(', ')}\n`);
  besideLines.forEach(printAndCount());
  code = main !== 0 ? main : besideCode;
} else {
  code = await runTap(tapArgs, printAndCount());
}
const outlived = await processesLeftRunning(Number(process.env.HATCH_TEST_OUTLIVE_GRACE_MS) || 20_000);
if (outlived.length) {
  process.stdout.write(
    `\nprocesses the tests started and left running (killed now):\n${outlived.map((p) => `  ${p.pid} ${p.cmd}`).join('\n')}\n`,
  );
  failures.push(`${outlived.length} process(es) outlived the tests: every process a test starts must end with it`);
  fileFailures++;
}
helper('cleanup');
if (coverage) coverageReport();
failed += fileFailures;
if (failures.length) {
  process.stdout.write('\nFailed:\n');
  for (const f of failures) process.stdout.write(`  ${f}\n`);
}
const exitCode = code !== 0 || failed > 0 ? 1 : 0;
if (exitCode !== 0 && failed === 0) failed = 1; // tap failed without a failing test line
process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
process.exit(exitCode);

/**
 * tap's Test class is built for the plugins .taprc names (`!@tapjs/typescript`: tsx, from
 * node-arg, loads the TypeScript). After an install it is still the default build, and tap
 * rebuilds it inside the run, but only after it has taken the default build's node arguments for
 * the test files: every file of that run (on CI, every run: a fresh clone) then also loaded
 * ts-node's hook, ~3 s of CPU each. So the build is made first, when the built plugins differ from
 * the configured ones; if the check itself fails, tap is left to build as before.
 */
function buildTapClass() {
  // a process of its own: tap's config reads the cwd and argv it starts with
  const check = [
    "const { createRequire } = require('node:module');",
    "const tapRun = createRequire(require('node:fs').realpathSync('node_modules/tap/package.json')).resolve('@tapjs/run/package.json');",
    'const fromRun = createRequire(tapRun);',
    "fromRun('@tapjs/config').TapConfig.load().then((c) => process.stdout.write(c.pluginSignature === fromRun('@tapjs/test').signature ? 'built' : 'differs'));",
  ].join('\n');
  const r = spawnSync(process.execPath, ['-e', check], { cwd: root, env, encoding: 'utf8' });
  if (r.stdout !== 'differs') return; // built, or the check failed: tap builds as before if it must
  process.stdout.write("building tap's Test class for .taprc's plugins (once after an install)\n");
  spawnSync(tapBin, ['build'], { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit'] });
}

/**
 * Nothing a test starts may outlive the run (a service left by a test that failed before its
 * teardown kept running for hours, at a fifth of a core). Every process the tests start carries
 * this run's HATCH_TEST_RUN_ID in its environment (spawnService, spawnPostgres and spawnNats pass
 * it on): those still alive once tap is done get a grace period to finish exiting (watchdogs poll
 * once a second and give a server 10 s), then are listed, killed, and the run fails. Linux only
 * (/proc); elsewhere nothing is checked.
 */
async function processesLeftRunning(graceMs = 20_000) {
  if (process.platform !== 'linux') return [];
  const mark = `HATCH_TEST_RUN_ID=${runId}`;
  const scan = () => {
    const found = [];
    for (const name of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
      try {
        if (!fs.readFileSync(`/proc/${name}/environ`, 'latin1').split('\0').includes(mark)) continue;
        const stat = fs.readFileSync(`/proc/${name}/stat`, 'latin1');
        if (stat[stat.lastIndexOf(')') + 2] === 'Z') continue; // exited, waiting for its parent to reap it
        const cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'latin1').split('\0').join(' ').trim().slice(0, 200);
        found.push({ pid: Number(name), cmd });
      } catch {
        // gone meanwhile, or not ours to read
      }
    }
    return found;
  };
  const deadline = Date.now() + graceMs;
  let left = scan();
  while (left.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    left = scan();
  }
  for (const p of left) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return left;
}

/** c8's report of the run's V8 coverage: one line per package (lines, branches, functions) and the total. */
function coverageReport() {
  const reportDir = path.join(root, 'coverage');
  const c8 = path.join(root, 'node_modules/.bin/c8');
  const args = [
    'report',
    '--temp-directory',
    coverageRaw,
    '--reports-dir',
    reportDir,
    '--reporter=json-summary',
    '--reporter=html',
    '--all',
  ];
  // --all: a source file no test loads counts as 0 %, not as absent
  for (const glob of ['packages/*/src/**', 'services/*/src/**', 'web/src/**']) args.push('--include', glob);
  // types only (kysely-codegen's output): no line of it runs, so --all would count every line as missed
  args.push('--exclude', 'packages/db/src/generated.ts');
  const r = spawnSync(c8, args, { cwd: root, env: { ...process.env, NODE_V8_COVERAGE: '' }, stdio: ['ignore', 'ignore', 'inherit'] });
  fs.rmSync(coverageRaw, { recursive: true, force: true });
  if (r.status !== 0) {
    process.stdout.write('\ncoverage: c8 report failed\n');
    return;
  }
  const summary = JSON.parse(fs.readFileSync(path.join(reportDir, 'coverage-summary.json'), 'utf8'));
  const sum = () => ({ lines: [0, 0], branches: [0, 0], functions: [0, 0] });
  const byPackage = new Map();
  for (const [file, s] of Object.entries(summary)) {
    if (file === 'total') continue;
    const rel = path.relative(root, file).split(path.sep);
    const name = rel[0] === 'packages' || rel[0] === 'services' ? rel.slice(0, 2).join('/') : rel[0];
    const p = byPackage.get(name) ?? sum();
    for (const k of ['lines', 'branches', 'functions']) {
      p[k][0] += s[k].covered;
      p[k][1] += s[k].total;
    }
    byPackage.set(name, p);
  }
  const pct = ([c, t]) => (t ? `${((100 * c) / t).toFixed(1)}%` : '-').padStart(7);
  const row = (name, p) => `  ${name.padEnd(30)} ${pct(p.lines)} ${pct(p.branches)} ${pct(p.functions)}\n`;
  const t = summary.total;
  process.stdout.write(`\nCoverage (c8; lines, branches, functions; coverage/index.html has each line):\n`);
  for (const [name, p] of [...byPackage].sort(([a], [b]) => a.localeCompare(b))) process.stdout.write(row(name, p));
  const total = {
    lines: [t.lines.covered, t.lines.total],
    branches: [t.branches.covered, t.branches.total],
    functions: [t.functions.covered, t.functions.total],
  };
  process.stdout.write(row('all', total));
}

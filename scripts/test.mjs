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
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { preflight } from './test-tools.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const runId = randomBytes(4).toString('hex');
const env = { ...process.env, HATCH_TEST_RUN_ID: runId, FORCE_COLOR: '0' };
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
const child = spawn(tapBin, ['--reporter=tap', ...process.argv.slice(2)], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });

let passed = 0;
let failed = 0;
let skipped = 0;
let fileFailures = 0;
const failures = [];
let currentFile = [];
const rl = readline.createInterface({ input: child.stdout });
const rlClosed = new Promise((r) => rl.once('close', r));
rl.on('line', (line) => {
  process.stdout.write(`${line}\n`);
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
});

const code = await new Promise((resolve) => child.on('close', (c, signal) => resolve(c ?? (signal ? 1 : 0))));
await rlClosed;
helper('cleanup');
failed += fileFailures;
if (failures.length) {
  process.stdout.write('\nFailed:\n');
  for (const f of failures) process.stdout.write(`  ${f}\n`);
}
const exitCode = code !== 0 || failed > 0 ? 1 : 0;
if (exitCode !== 0 && failed === 0) failed = 1; // tap failed without a failing test line
process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
process.exit(exitCode);

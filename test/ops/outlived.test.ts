/**
 * `pnpm test` fails when a process a test started outlives the run (scripts/test.mjs,
 * processesLeftRunning), lists it and kills it; a run whose processes all ended passes. Each case
 * runs the real `pnpm test` runner on one fixture file (test/fixtures/outlived.fixture.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { REPO_ROOT, waitFor, type Teardownable } from '@hatch/testing';
import { run } from './tools.js';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function runFixture(t: Teardownable, leak: boolean) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hatch-outlived-'));
  const pidFile = path.join(dir, 'pid');
  t.teardown(() => {
    const pid = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8')) : 0;
    if (pid && alive(pid)) process.kill(pid, 'SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const res = await run(process.execPath, ['scripts/test.mjs', 'test/fixtures/outlived.fixture.ts'], {
    cwd: REPO_ROOT,
    // tap's own settings (TAP_GREP, …) stay with this run, not the nested one
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TAP'))),
      HATCH_FIXTURE_LEAK: leak ? '1' : '0',
      HATCH_FIXTURE_PID_FILE: pidFile,
      HATCH_TEST_OUTLIVE_GRACE_MS: '1000',
    },
    timeoutMs: 120_000,
  });
  return { ...res, pid: Number(fs.readFileSync(pidFile, 'utf8')) };
}

t.test('a process a test left running fails the run, is named, and is killed', async (t) => {
  const r = await runFixture(t, true);
  const out = r.stdout + r.stderr;
  t.equal(r.code, 1, 'exit 1');
  t.match(out, /processes the tests started and left running \(killed now\):/);
  t.match(out, new RegExp(`\\n  ${r.pid} sleep 300\\n`), 'the process is listed');
  t.match(out, /\n1 passed, 1 failed\n/, 'counted as a failure');
  await waitFor(() => !alive(r.pid), { timeoutMs: 5000, message: 'the process is gone' });
});

t.test('a run whose processes all ended passes', async (t) => {
  const r = await runFixture(t, false);
  const out = r.stdout + r.stderr;
  t.equal(r.code, 0, out.slice(-500));
  t.notMatch(out, /left running/);
  t.match(out, /\n1 passed, 0 failed\n/);
});

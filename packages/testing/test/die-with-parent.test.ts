/**
 * A service a test spawns dies with the test process, even when that process is killed -9 and
 * its teardown never runs (found: realtime-bridge processes left running for hours after test
 * runs were killed by timeouts).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { processGone, REPO_ROOT, waitFor } from '../src/index.js';

t.test('a spawned service dies with its test process when that process is killed -9', async (t) => {
  const parent = spawn(
    process.execPath,
    ['--conditions=@hatch/source', '--import', 'tsx', path.join(REPO_ROOT, 'packages/testing/test/fixtures/spawn-and-wait.ts')],
    {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  parent.stdout.on('data', (d: Buffer) => (out += d.toString()));
  let servicePid = 0;
  t.teardown(() => {
    for (const pid of [parent.pid, servicePid]) {
      try {
        if (pid) process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });
  await waitFor(() => /^\d+\n/.test(out), { timeoutMs: 30_000, message: 'the stand-in test process reports its service' });
  servicePid = Number(out.trim());
  t.notOk(processGone(servicePid), 'the service runs');
  parent.kill('SIGKILL');
  await waitFor(() => processGone(servicePid), { timeoutMs: 10_000, message: 'the service died with its test process' });
  t.pass('the service is gone');
});

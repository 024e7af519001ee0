/**
 * spawnService: runs a service's main.ts from source as a real child process (its own process
 * group), captures its output, and kills it in teardown. For startup, shutdown and crash tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Teardownable } from './db.js';
import { waitFor } from './wait.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const DIE_WITH_PARENT = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), 'die-with-parent.mjs')).href;

export interface ServiceProcess {
  child: ChildProcess;
  pid: number;
  output(): string;
  /** parsed JSON log lines so far (non-JSON lines skipped) */
  logs(): Array<Record<string, unknown>>;
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** resolves with the exit code (or 128+signal) */
  exited: Promise<number>;
  signal(sig: NodeJS.Signals): void;
  /** kill -9 the whole process group */
  kill9(): Promise<number>;
}

export function spawnService(t: Teardownable, service: string, env: Record<string, string | undefined>): ServiceProcess {
  const main = path.join(REPO_ROOT, 'services', service, 'src', 'main.ts');
  // stdin is a pipe the child watches (die-with-parent.mjs): a test killed before its teardown
  // runs still takes its services with it (they run in their own process group).
  const child = spawn(process.execPath, ['--import', DIE_WITH_PARENT, '--conditions=@hatch/source', '--import', 'tsx', main], {
    cwd: REPO_ROOT,
    // HATCH_TEST_RUN_ID: pnpm test finds, by it, any process a test left running (scripts/test.mjs)
    env: { PATH: process.env.PATH, HOME: process.env.HOME, HATCH_TEST_RUN_ID: process.env.HATCH_TEST_RUN_ID, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  (child.stdin as (NodeJS.WritableStream & { unref?: () => void }) | null)?.unref?.();
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number>((resolve) => {
    child.on('exit', (code, sig) => resolve(code ?? (sig ? 128 + (sig === 'SIGKILL' ? 9 : 15) : 1)));
  });
  let done = false;
  void exited.then(() => (done = true));
  const logs = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  const kill9 = async () => {
    if (!done && child.pid) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    return exited;
  };
  t.teardown(kill9);
  return {
    child,
    pid: child.pid ?? -1,
    output: () => out,
    logs,
    async waitForLog(match, timeoutMs = 60_000) {
      let found: Record<string, unknown> | undefined;
      await waitFor(
        () => {
          if (done) throw new Error(`${service} exited before the expected log line:\n${out}`);
          found = logs().find(match);
          return found !== undefined;
        },
        { timeoutMs, message: `${service} log line\n--- output ---\n${out}` },
      );
      return found as Record<string, unknown>;
    },
    exited,
    signal: (sig) => child.kill(sig),
    kill9,
  };
}

/**
 * Nothing a test spawns outlives the test process (docs/reliability.md#the-harness): teardown
 * stops each server and removes its directory even when the test failed; a process 'exit' /
 * SIGINT / SIGTERM / SIGHUP hook does the same synchronously for everything still owned; and a
 * small watchdog shell (its own process group) does it if the test process dies by SIGKILL, which
 * no in-process hook can see. Used by spawn-nats.ts and spawn-postgres.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Owned {
  cleanupSync(): void;
}

const owned = new Set<Owned>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
let hooksInstalled = false;

function cleanupAllSync(): void {
  for (const o of [...owned]) {
    try {
      o.cleanupSync();
    } catch {
      // best effort while the process exits; the watchdog covers what this misses
    }
  }
  owned.clear();
}

function onSignal(sig: NodeJS.Signals): void {
  cleanupAllSync();
  uninstallHooks();
  // Re-raise so the signal still ends the process (a listener suppresses the default action):
  // tap's signal-exit handler, or the default action when there is none, takes it from here.
  process.kill(process.pid, sig);
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', cleanupAllSync);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function uninstallHooks(): void {
  if (!hooksInstalled) return;
  hooksInstalled = false;
  process.off('exit', cleanupAllSync);
  for (const s of SIGNALS) process.off(s, onSignal);
}

export function own(o: Owned): void {
  owned.add(o);
  installHooks();
}

export function disown(o: Owned): void {
  owned.delete(o);
  if (owned.size === 0) uninstallHooks();
}

/**
 * A detached `sh` that waits for this process to die, then stops the server (checking the pid
 * still belongs to it, read from the pid file) and removes the directory. Killed in teardown.
 */
export function startWatchdog(dir: string, pidFile: string, comm: string, stopSignal: 'KILL' | 'QUIT'): ChildProcess {
  const script = [
    'parent=$1; dir=$2; pidfile=$3; comm=$4; sig=$5',
    'while kill -0 "$parent" 2>/dev/null; do sleep 1; done',
    'if [ -f "$pidfile" ]; then',
    '  pid=$(head -n 1 "$pidfile")',
    '  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]; then',
    '    kill -"$sig" "$pid" 2>/dev/null',
    '    i=0; while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done',
    '    kill -KILL "$pid" 2>/dev/null',
    '  fi',
    'fi',
    'rm -rf "$dir"',
  ].join('\n');
  const wd = spawn('/bin/sh', ['-c', script, 'hatch-spawn-watchdog', String(process.pid), dir, pidFile, comm, stopSignal], {
    detached: true,
    stdio: 'ignore',
  });
  wd.on('error', () => {
    // no /bin/sh: the in-process hooks still clean up on a normal exit
  });
  wd.unref();
  return wd;
}

export function killWatchdog(wd: ChildProcess | undefined): void {
  if (wd?.pid === undefined || wd.exitCode !== null || wd.signalCode !== null) return;
  try {
    process.kill(-wd.pid, 'SIGKILL'); // its group: the sh and its `sleep`
  } catch {
    // already gone
  }
}

/** True when no such process runs (a zombie counts as gone: it no longer holds a port or files). */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false;
  }
}

/** A fresh directory for a server's data, removed by its teardown, the exit hooks or the watchdog. */
export function makeTmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

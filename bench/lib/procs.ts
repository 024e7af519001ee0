/**
 * Child processes of the bench (services, load clients, raw-limit servers) and their CPU and RSS
 * from /proc. Every child is its own process group; `killAll()` ends every group still running
 * (also called from the exit/signal hooks of run.ts), so nothing outlives a failed run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLK_TCK = 100; // Linux USER_HZ

export interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  /** last 64 KiB of stdout + stderr */
  output(): string;
  exited: Promise<number>;
  /** JSON lines printed on stdout, in order (bounded to the last 200) */
  messages: unknown[];
  nextMessage(timeoutMs: number): Promise<unknown>;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

const live = new Set<Proc>();

export interface SpawnOpts {
  env?: Record<string, string | undefined>;
  /** raise the fd limit of the child (the bench runs as root here; else bounded by the hard limit) */
  nofile?: number;
  /** extra node flags (e.g. --cpu-prof) */
  nodeArgs?: string[];
}

/** A TypeScript file (services' main.ts or bench/lib/*.ts) run with tsx from source. */
export function spawnTs(name: string, file: string, args: string[] = [], opts: SpawnOpts = {}): Proc {
  const nodeArgs = ['--conditions=@hatch/source', '--import', 'tsx', ...(opts.nodeArgs ?? []), file, ...args];
  return spawnCmd(name, process.execPath, nodeArgs, opts);
}

export function spawnCmd(name: string, cmd: string, args: string[], opts: SpawnOpts = {}): Proc {
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, ...opts.env };
  let child: ChildProcess;
  if (opts.nofile) {
    // `ulimit -n` then exec: the child itself (same pid) gets the higher limit.
    const quoted = [cmd, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    child = spawn('/bin/sh', ['-c', `ulimit -n ${opts.nofile} 2>/dev/null || ulimit -n $(ulimit -Hn); exec ${quoted}`], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
  } else child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  let lineBuf = '';
  const messages: unknown[] = [];
  const waiters: Array<(m: unknown) => void> = [];
  const tail = (s: string) => {
    out += s;
    if (out.length > 65536) out = out.slice(-65536);
  };
  child.stdout?.on('data', (d: Buffer) => {
    const s = d.toString();
    tail(s);
    lineBuf += s;
    let nl: number;
    while ((nl = lineBuf.indexOf('\n')) !== -1) {
      const line = lineBuf.slice(0, nl);
      lineBuf = lineBuf.slice(nl + 1);
      if (!line.startsWith('{"bench"')) continue;
      let m: unknown;
      try {
        m = (JSON.parse(line) as { bench: unknown }).bench;
      } catch {
        continue;
      }
      const w = waiters.shift();
      if (w) w(m);
      else {
        messages.push(m);
        if (messages.length > 200) messages.shift();
      }
    }
    if (lineBuf.length > 1 << 20) lineBuf = '';
  });
  child.stderr?.on('data', (d: Buffer) => tail(d.toString()));
  const exited = new Promise<number>((resolve) => child.on('exit', (code, sig) => resolve(code ?? (sig ? 128 : 1))));
  const p: Proc = {
    name,
    child,
    pid: child.pid ?? -1,
    output: () => out,
    exited,
    messages,
    nextMessage(timeoutMs) {
      const m = messages.shift();
      if (m !== undefined) return Promise.resolve(m);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          const i = waiters.indexOf(got);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`${name}: no message within ${timeoutMs} ms\n${out.slice(-3000)}`));
        }, timeoutMs);
        const got = (msg: unknown) => {
          clearTimeout(timer);
          resolve(msg);
        };
        waiters.push(got);
        void exited.then((code) => {
          if (waiters.includes(got)) {
            clearTimeout(timer);
            waiters.splice(waiters.indexOf(got), 1);
            reject(new Error(`${name} exited (${code}) before its message\n${out.slice(-3000)}`));
          }
        });
      });
    },
    async stop(signal = 'SIGTERM', graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return void live.delete(p);
      try {
        process.kill(-p.pid, signal);
      } catch {
        /* gone */
      }
      const t = setTimeout(() => {
        try {
          process.kill(-p.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, graceMs);
      await exited;
      clearTimeout(t);
      live.delete(p);
    },
  };
  live.add(p);
  void exited.then(() => live.delete(p));
  return p;
}

/** SIGKILL every process group still running (synchronous: usable in an exit hook). */
export function killAllSync(): void {
  for (const p of live) {
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  live.clear();
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop('SIGTERM', 3000)));
}

/* ------------------------------------------------------------------------------------------ */
/* /proc                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/** utime + stime of a process in seconds; undefined when it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** VmRSS in bytes. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** pids whose /proc/<pid>/comm is `comm` (postgres backends, nats-server). */
export function pidsByComm(comm: string): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/comm`, 'utf8').trim() === comm) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

export type Watched = Record<string, number | (() => number[])>;

export interface CpuWindow {
  /** CPU % of one core per watched name over the window (200 = both cores of this machine) */
  cpu: Record<string, number>;
  seconds: number;
  /** whole machine: busy % of all cores from /proc/stat (other users of the machine included) */
  machineBusyPct: number;
}

function machineTicks(): { busy: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/**
 * Starts a CPU window over the watched processes (a pid, or a function listing pids: summed, a
 * process that appears mid-window counts from zero). `end()` returns CPU % per name.
 *
 * `sampleMs`: also read every watched process that often, so one that exits before `end()` (a
 * pgbench backend, a load client) still counts up to its last sample instead of vanishing.
 */
export function cpuWindow(watched: Watched, opts: { sampleMs?: number } = {}): { end(): CpuWindow } {
  const list = (w: number | (() => number[])) => (typeof w === 'number' ? [w] : w());
  const start = new Map<number, number>();
  for (const w of Object.values(watched)) for (const pid of list(w)) start.set(pid, cpuSeconds(pid) ?? 0);
  // latest reading per pid and name (a pid listed under two names counts under both)
  const last = new Map<string, Map<number, number>>();
  const sample = () => {
    for (const [name, w] of Object.entries(watched)) {
      let m = last.get(name);
      if (!m) last.set(name, (m = new Map()));
      for (const pid of list(w)) {
        const now = cpuSeconds(pid);
        if (now !== undefined) m.set(pid, now);
      }
    }
  };
  const timer = opts.sampleMs ? setInterval(sample, opts.sampleMs) : undefined;
  timer?.unref();
  const t0 = performance.now();
  const m0 = machineTicks();
  return {
    end() {
      if (timer) clearInterval(timer);
      sample();
      const seconds = (performance.now() - t0) / 1000;
      const cpu: Record<string, number> = {};
      for (const name of Object.keys(watched)) {
        let s = 0;
        for (const [pid, now] of last.get(name) ?? []) s += now - (start.get(pid) ?? 0);
        cpu[name] = Math.round((s / seconds) * 1000) / 10;
      }
      const m1 = machineTicks();
      const machineBusyPct = (Math.round(((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total)) * 1000) / 10) * os.cpus().length;
      return { cpu, seconds, machineBusyPct };
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `fn` until it returns true (bounded). */
export async function waitUntil(fn: () => Promise<boolean> | boolean, timeoutMs: number, what: string, everyMs = 25): Promise<void> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    try {
      if (await fn()) return;
    } catch (err) {
      if ((err as { fatal?: boolean }).fatal) throw err;
    }
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** GET url → status (or 0 on a connection error), bounded by a 2 s timeout. */
export async function httpStatus(url: string): Promise<number> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

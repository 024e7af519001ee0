/**
 * What every scenario gets (the running stack, the bench database, the run's settings) and gives
 * back (report rows and raw data), and the per-process CPU summary each one notes beside its figure.
 */
import os from 'node:os';
import type postgres from 'postgres';
import { cpuMsPerUnit, fmt, summarize, type Row } from '../lib/report.js';
import { pidsByComm, type CpuWindow, type Proc, type Watched } from '../lib/procs.js';
import type { StackEnvOpts } from '../lib/stack.js';

export interface Ctx {
  /** extra node flags for a service (--cpu-prof when BENCH_CPU_PROF names it) */
  profArgs(name: string): string[];
  quick: boolean;
  /** pids of the PostgreSQL backends serving the bench database (refreshed every 250 ms) */
  pgPids: number[];
  /** the backends of the bench database and of the peers' databases (`<bench db>_*`), same refresh */
  pgBackends: PgBackend[];
  runs: number;
  /** seconds of each measuring window */
  seconds: number;
  env: StackEnvOpts;
  /** the bench database's name (its backends are `postgres (bench db backends)`) */
  dbName: string;
  /** the running stack by service name */
  stack: Map<string, Proc>;
  /** the application's writes (P3/P6 writers, resets): its backends count as PostgreSQL's CPU */
  sql: postgres.Sql;
  /** the bench's own polls and counts (application_name BENCH_APP): never counted */
  probe: postgres.Sql;
  conversationId: string;
  log(msg: string): void;
  /** raw per-run data for the JSON file */
  detail: Record<string, unknown>;
}

export interface PgBackend {
  pid: number;
  db: string;
  app: string;
}

/** A pid lister (for `cpuWindow`) of the PostgreSQL backends of one database, optionally of one application_name. */
export const pgPidsOf =
  (c: Ctx, db: string, app?: string): (() => number[]) =>
  () =>
    c.pgBackends.filter((b) => b.db === db && (app === undefined || b.app === app)).map((b) => b.pid);

export interface ScenarioResult {
  rows: Row[];
  detail: unknown;
}

export const gatewayUrl = (c: Ctx) => `http://127.0.0.1:${c.env.ports.gateway}`;

export function watched(c: Ctx, extra: Watched = {}): Watched {
  const w: Watched = {};
  for (const [name, p] of c.stack) w[name] = p.pid;
  w['postgres (bench db backends)'] = () => c.pgPids;
  w['nats-server'] = () => pidsByComm('nats-server');
  w['bench (load generator)'] = process.pid;
  return { ...w, ...extra };
}

/** The busiest process of each run, and the median CPU % per process over the runs. */
export function cpuSummary(windows: CpuWindow[]): { medianCpuPct: Record<string, number>; bottleneck: string; machineBusyPct: number } {
  const names = Object.keys(windows[0]?.cpu ?? {});
  const medianCpuPct: Record<string, number> = {};
  for (const n of names) medianCpuPct[n] = summarize(windows.map((w) => w.cpu[n] ?? 0)).median;
  const top = Object.entries(medianCpuPct).sort((a, b) => b[1] - a[1])[0];
  return {
    medianCpuPct,
    bottleneck: top ? `${top[0]} ${top[1].toFixed(0)} %` : '?',
    machineBusyPct: summarize(windows.map((w) => w.machineBusyPct)).median,
  };
}

export function cpuNote(s: ReturnType<typeof cpuSummary>): string {
  const parts = Object.entries(s.medianCpuPct)
    .sort((a, b) => b[1] - a[1])
    .map(([n, v]) => `${n} ${v.toFixed(0)}`);
  const ours = Object.values(s.medianCpuPct).reduce((a, b) => a + b, 0);
  const others = Math.max(0, s.machineBusyPct - ours);
  return `CPU % of one core: ${parts.join(', ')}; whole machine busy ${s.machineBusyPct.toFixed(0)} % of ${100 * os.cpus().length} %, of which ${others.toFixed(0)} % other processes (other users, and PostgreSQL's WAL writer / checkpointer, shared)`;
}

/** Where the CPU of a unit of work goes: the median over the runs of each process's CPU ms per unit, largest first. */
export function perUnitNote(windows: readonly CpuWindow[], units: readonly number[], names: readonly string[], unit: string): string {
  const parts = names
    .map((n) => [n, summarize(windows.map((w, i) => cpuMsPerUnit(w.cpu, [n], w.seconds, units[i] ?? Number.NaN))).median] as const)
    .sort((a, b) => b[1] - a[1]);
  const total = summarize(windows.map((w, i) => cpuMsPerUnit(w.cpu, names, w.seconds, units[i] ?? Number.NaN))).median;
  return `CPU ${unit} by process (median of runs): ${parts.map(([n, v]) => `${n} ${fmt(v)}`).join(', ')}; total ${fmt(total)}`;
}

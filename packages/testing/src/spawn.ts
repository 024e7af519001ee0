/**
 * Own NATS and PostgreSQL processes for fault tests (docs/reliability.md#the-harness): each spawn
 * owns a server on a free port with its data in a temporary directory, so a test can kill,
 * stop and restart it without touching the shared servers other test files use.
 *
 * Nothing outlives the test process: teardown stops the server and removes its directory even
 * when the test failed; a process 'exit' / SIGINT / SIGTERM / SIGHUP hook does the same
 * synchronously; and a small watchdog shell (its own process group) does it if the test process
 * dies by SIGKILL, which no in-process hook can see.
 *
 * Readiness is polled with a deadline (NATS: our server's INFO line; PostgreSQL: `pg_ctl -w`),
 * never a fixed sleep.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Teardownable } from './db.js';
import { waitFor } from './wait.js';

/* ------------------------------------------------------------------------------------------ */
/* ports                                                                                      */
/* ------------------------------------------------------------------------------------------ */

const handedOut = new Set<number>();

/**
 * A TCP port on 127.0.0.1 that was free a moment ago. Another process may still take it before
 * the caller binds it (tap runs files in parallel), so the spawners retry a first start that
 * fails to bind on a fresh port.
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
        const { port: p } = srv.address() as net.AddressInfo;
        srv.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: the OS kept returning ports this process already handed out');
}

/* ------------------------------------------------------------------------------------------ */
/* cleanup when the test process ends without teardown                                        */
/* ------------------------------------------------------------------------------------------ */

interface Owned {
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

function own(o: Owned): void {
  owned.add(o);
  installHooks();
}

function disown(o: Owned): void {
  owned.delete(o);
  if (owned.size === 0) uninstallHooks();
}

/**
 * A detached `sh` that waits for this process to die, then stops the server (checking the pid
 * still belongs to it, read from the pid file) and removes the directory. Killed in teardown.
 */
function startWatchdog(dir: string, pidFile: string, comm: string, stopSignal: 'KILL' | 'QUIT'): ChildProcess {
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

function killWatchdog(wd: ChildProcess | undefined): void {
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

function makeTmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

class OutputTail {
  private text = '';
  constructor(private readonly max = 64 * 1024) {}
  push(chunk: Buffer | string): void {
    this.text += chunk.toString();
    if (this.text.length > this.max) this.text = this.text.slice(-this.max);
  }
  toString(): string {
    return this.text;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* NATS                                                                                       */
/* ------------------------------------------------------------------------------------------ */

export interface SpawnNatsOptions {
  /**
   * `jetstream { sync_interval: always }`: fsync every write (docs/reliability.md#jetstream). nats-server
   * 2.9.10 (this machine's) does not know the setting and refuses the config; the option is then
   * ignored and `syncAlways` on the result says false, so a test can record which variant ran.
   */
  syncAlways?: boolean;
  /** extra nats-server arguments (e.g. `['-m', '8222']`) */
  args?: string[];
  /** ready deadline for each start (default 15 s) */
  startTimeoutMs?: number;
}

export interface SpawnedNats {
  url: string;
  port: number;
  /** JetStream store directory (kept across restarts, removed in teardown) */
  storeDir: string;
  /** whether `sync_interval: always` is in effect (see SpawnNatsOptions.syncAlways) */
  syncAlways: boolean;
  /** pid of the running server, undefined when stopped */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** the server's log so far (last 64 KiB), for failure messages */
  output(): string;
  /** SIGTERM (graceful), wait for exit (SIGKILL after 10 s) */
  stop(): Promise<void>;
  /** SIGKILL, wait for exit */
  kill(): Promise<void>;
  /** start again on the same port and store dir; resolves when it accepts clients. No-op when running. */
  start(): Promise<void>;
  /** stop() + start() */
  restart(): Promise<void>;
  /** what teardown does: kill the server, remove its directory (idempotent) */
  destroy(): Promise<void>;
}

let natsBinCache: string | undefined;
function natsBin(): string {
  if (natsBinCache) return natsBinCache;
  const fromEnv = process.env.HATCH_NATS_SERVER_BIN;
  const candidates = [fromEnv, ...(process.env.PATH ?? '').split(':').map((d) => path.join(d, 'nats-server')), '/usr/sbin/nats-server', '/usr/local/bin/nats-server'];
  for (const c of candidates) {
    if (c && fs.existsSync(c)) return (natsBinCache = c);
  }
  throw new Error("spawnNats: nats-server not found (pnpm test's preflight, scripts/test-tools.mjs, installs it: `apt-get install nats-server`; or set HATCH_NATS_SERVER_BIN)");
}

let syncIntervalSupport: boolean | undefined;
/** Asks the binary (`-t`: test the config and exit) whether it knows `sync_interval`. */
function supportsSyncInterval(dir: string): boolean {
  if (syncIntervalSupport !== undefined) return syncIntervalSupport;
  const conf = path.join(dir, 'probe.conf');
  fs.writeFileSync(conf, `jetstream { store_dir: ${JSON.stringify(path.join(dir, 'probe'))}, sync_interval: always }\n`);
  const res = spawnSync(natsBin(), ['-c', conf, '-t'], { encoding: 'utf8', timeout: 10_000 });
  fs.rmSync(conf, { force: true });
  syncIntervalSupport = res.status === 0;
  return syncIntervalSupport;
}

/** Connects and reads the greeting: true when it is an INFO line from the server named `name`. */
function natsGreets(port: number, name: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    let buf = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('\r\n')) done(buf.startsWith('INFO ') && buf.includes(`"server_name":${JSON.stringify(name)}`));
    });
    sock.on('error', () => done(false));
    sock.on('close', () => done(false));
  });
}

export async function spawnNats(t: Teardownable, opts: SpawnNatsOptions = {}): Promise<SpawnedNats> {
  const bin = natsBin();
  const dir = makeTmpDir('hatch-nats-');
  const storeDir = path.join(dir, 'store');
  const pidFile = path.join(dir, 'nats.pid');
  fs.mkdirSync(storeDir);
  const name = `hatch-test-${process.pid}-${randomBytes(3).toString('hex')}`;
  const syncAlways = opts.syncAlways === true && supportsSyncInterval(dir);
  const startTimeoutMs = opts.startTimeoutMs ?? 15_000;
  let confArgs = ['-js', '-sd', storeDir];
  if (syncAlways) {
    const conf = path.join(dir, 'nats.conf');
    fs.writeFileSync(conf, `jetstream {\n  store_dir: ${JSON.stringify(storeDir)}\n  sync_interval: always\n}\n`);
    confArgs = ['-c', conf];
  }

  const out = new OutputTail();
  let launchOutput = '';
  let port = await freePort();
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let destroyed = false;
  let watchdog: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const args = ['-a', '127.0.0.1', '-p', String(port), '-n', name, ...confArgs, ...(opts.args ?? [])];
    const c = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    launchOutput = '';
    const collect = (d: Buffer) => {
      out.push(d);
      launchOutput += d.toString();
    };
    c.stdout?.on('data', collect);
    c.stderr?.on('data', collect);
    let gone = false;
    exited = new Promise<void>((resolve) => {
      c.once('exit', () => {
        gone = true;
        if (child === c) child = undefined;
        fs.rmSync(pidFile, { force: true });
        resolve();
      });
      c.once('error', (err) => {
        out.push(`spawn error: ${err.message}\n`);
        gone = true;
        if (child === c) child = undefined;
        resolve();
      });
    });
    if (c.pid !== undefined) fs.writeFileSync(pidFile, `${c.pid}\n`);
    await waitFor(async () => gone || (await natsGreets(port, name)), {
      timeoutMs: startTimeoutMs,
      message: `nats-server on port ${port} to accept clients`,
    }).catch(async (err: Error) => {
      c.kill('SIGKILL');
      await exited;
      throw new Error(`${err.message}\n--- nats-server output ---\n${out}`);
    });
    if (gone) throw new Error(`nats-server exited during start on port ${port}\n--- nats-server output ---\n${out}`);
  };

  const waitExit = async (boundMs: number): Promise<void> => {
    const c = child;
    if (!c) return;
    const timer = setTimeout(() => c.kill('SIGKILL'), boundMs);
    await exited;
    clearTimeout(timer);
  };

  const handle: SpawnedNats & Owned = {
    get url() {
      return `nats://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    storeDir,
    syncAlways,
    get pid() {
      return child?.pid;
    },
    get running() {
      return child !== undefined;
    },
    output: () => out.toString(),
    async stop() {
      child?.kill('SIGTERM');
      await waitExit(10_000);
    },
    async kill() {
      child?.kill('SIGKILL');
      await waitExit(5_000);
    },
    async start() {
      if (destroyed) throw new Error('spawnNats: start() after teardown');
      if (child) return;
      await launch();
    },
    async restart() {
      await handle.stop();
      await handle.start();
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      killWatchdog(watchdog);
      await handle.kill();
      await fs.promises.rm(dir, { recursive: true, force: true });
      disown(handle);
    },
    cleanupSync() {
      destroyed = true;
      killWatchdog(watchdog);
      child?.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };

  own(handle);
  t.teardown(() => handle.destroy());
  watchdog = startWatchdog(dir, pidFile, 'nats-server', 'KILL');
  try {
    // Only the first start may move to another port (someone took ours between freePort and bind).
    for (let attempt = 1; ; attempt++) {
      try {
        await launch();
        break;
      } catch (err) {
        const inUse = /address already in use/i.test(launchOutput);
        if (!inUse || attempt >= 3) throw err;
        port = await freePort();
      }
    }
  } catch (err) {
    await handle.destroy();
    throw err;
  }
  return handle;
}

/* ------------------------------------------------------------------------------------------ */
/* PostgreSQL                                                                                 */
/* ------------------------------------------------------------------------------------------ */

export interface SpawnPostgresOptions {
  /**
   * fsync (default false: tests don't survive power loss anyway, and it makes initdb and
   * commits fast). A process crash (`stop('immediate')`) loses nothing either way: committed WAL
   * has been written to the OS before the commit returns.
   */
  fsync?: boolean;
  /** extra postgresql.conf settings, e.g. `{ log_lock_waits: 'on' }` */
  settings?: Record<string, string | number | boolean>;
  /** deadline for each start, crash recovery included (default 30 s) */
  startTimeoutMs?: number;
}

export type PostgresStopMode = 'fast' | 'immediate';

export interface SpawnedPostgres {
  /** postgres://postgres@127.0.0.1:PORT/postgres (trust auth) */
  url: string;
  port: number;
  /** the cluster's data directory (kept across restarts, removed in teardown) */
  dataDir: string;
  /** the postmaster's pid, undefined when stopped */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** postgres.log so far (last 64 KiB) */
  output(): string;
  /** `pg_ctl stop -m <mode>` (default fast), waits until it is down */
  stop(mode?: PostgresStopMode): Promise<void>;
  /** `pg_ctl start -w`: resolves when it accepts connections (after crash recovery). No-op when running. */
  start(): Promise<void>;
  restart(mode?: PostgresStopMode): Promise<void>;
  /** what teardown does: immediate stop, remove the directory (idempotent) */
  destroy(): Promise<void>;
}

let pgBinCache: string | undefined;
function pgBinDir(): string {
  if (pgBinCache) return pgBinCache;
  const has = (d: string) => fs.existsSync(path.join(d, 'initdb')) && fs.existsSync(path.join(d, 'pg_ctl'));
  const fromEnv = process.env.HATCH_PG_BIN;
  if (fromEnv) {
    if (has(fromEnv)) return (pgBinCache = fromEnv);
    throw new Error(`spawnPostgres: HATCH_PG_BIN=${fromEnv} holds no initdb / pg_ctl`);
  }
  // Debian keeps the server binaries out of PATH, one directory per major version.
  const base = '/usr/lib/postgresql';
  if (fs.existsSync(base)) {
    const versions = fs
      .readdirSync(base)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) if (has(path.join(base, v, 'bin'))) return (pgBinCache = path.join(base, v, 'bin'));
  }
  const cfg = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  const dir = cfg.status === 0 ? cfg.stdout.trim() : '';
  if (dir && has(dir)) return (pgBinCache = dir);
  throw new Error("spawnPostgres: PostgreSQL server binaries (initdb, pg_ctl) not found (pnpm test's preflight, scripts/test-tools.mjs, installs them: `apt-get install postgresql`; or set HATCH_PG_BIN)");
}

/** initdb and postgres refuse to run as root: as root, run them as the `postgres` OS user. */
function pgRunAs(): { uid: number; gid: number; runuser: string } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  const u = id('-u');
  const g = id('-g');
  if (u.status !== 0 || g.status !== 0) throw new Error('spawnPostgres: running as root but there is no `postgres` OS user to run the server as');
  const runuser = ['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser'].find((p) => fs.existsSync(p));
  if (!runuser) throw new Error('spawnPostgres: running as root but `runuser` is missing');
  return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()), runuser };
}

const PG_ENV = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C' };

function pgArgv(bin: string, args: string[]): [string, string[]] {
  const as = pgRunAs();
  const full = path.join(pgBinDir(), bin);
  return as ? [as.runuser, ['-u', 'postgres', '--', full, ...args]] : [full, args];
}

function pgExec(bin: string, args: string[], timeoutMs: number): Promise<{ code: number; output: string }> {
  const [cmd, argv] = pgArgv(bin, args);
  return new Promise((resolve) => {
    execFile(cmd, argv, { env: PG_ENV, timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, output: `${stdout}${stderr}` });
      const code = typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1;
      resolve({ code, output: `${stdout}${stderr}` || err.message });
    });
  });
}

function pgExecSync(bin: string, args: string[], timeoutMs: number): void {
  const [cmd, argv] = pgArgv(bin, args);
  spawnSync(cmd, argv, { env: PG_ENV, timeout: timeoutMs, stdio: 'ignore' });
}

function confValue(v: string | number | boolean): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  return `'${v.replace(/'/g, "''")}'`;
}

function tail(file: string, max = 64 * 1024): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.length > max ? text.slice(-max) : text;
  } catch {
    return '';
  }
}

function readFrom(file: string, offset: number): string {
  try {
    return fs.readFileSync(file).subarray(offset).toString('utf8');
  } catch {
    return '';
  }
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

export async function spawnPostgres(t: Teardownable, opts: SpawnPostgresOptions = {}): Promise<SpawnedPostgres> {
  pgBinDir(); // fail early and clearly when the binaries are missing
  const as = pgRunAs();
  const dir = makeTmpDir('hatch-pg-');
  if (as) fs.chownSync(dir, as.uid, as.gid);
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'postgres.log');
  const pidFile = path.join(dataDir, 'postmaster.pid');
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  const fsync = opts.fsync ?? false;

  let port = await freePort();
  let logMark = 0;
  let running = false;
  let destroyed = false;
  let watchdog: ChildProcess | undefined;

  const writeConf = () => {
    const settings: Record<string, string | number | boolean> = {
      listen_addresses: '127.0.0.1',
      port,
      unix_socket_directories: dir,
      fsync,
      // Without fsync a torn page needs an OS crash; nothing here simulates one.
      full_page_writes: fsync,
      shared_buffers: '32MB',
      max_connections: 100,
      ...opts.settings,
    };
    const body = Object.entries(settings)
      .map(([k, v]) => `${k} = ${confValue(v)}`)
      .join('\n');
    // Written as the postgres user would: root-owned files in the data dir would stop the server.
    const file = path.join(dataDir, 'hatch.conf');
    fs.writeFileSync(file, `${body}\n`);
    if (as) fs.chownSync(file, as.uid, as.gid);
  };

  const readPid = (): number | undefined => {
    try {
      const n = Number(fs.readFileSync(pidFile, 'utf8').split('\n', 1)[0]);
      return Number.isInteger(n) && n > 0 ? n : undefined;
    } catch {
      return undefined;
    }
  };

  const launch = async (): Promise<void> => {
    logMark = fileSize(logFile);
    const r = await pgExec('pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', String(Math.ceil(startTimeoutMs / 1000)), '-s', 'start'], startTimeoutMs + 5_000);
    if (r.code !== 0) {
      // a half-started postmaster must not linger
      await pgExec('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', '-s', 'stop'], 15_000);
      throw new Error(`PostgreSQL did not start on port ${port}: ${r.output.trim()}\n--- postgres.log ---\n${tail(logFile)}`);
    }
    running = true;
  };

  const handle: SpawnedPostgres & Owned = {
    get url() {
      return `postgres://postgres@127.0.0.1:${port}/postgres`;
    },
    get port() {
      return port;
    },
    dataDir,
    get pid() {
      return running ? readPid() : undefined;
    },
    get running() {
      return running;
    },
    output: () => tail(logFile),
    async stop(mode: PostgresStopMode = 'fast') {
      if (!running) return;
      const pid = readPid();
      const r = await pgExec('pg_ctl', ['-D', dataDir, '-m', mode, '-w', '-t', '30', '-s', 'stop'], 35_000);
      if (r.code !== 0 && readPid() !== undefined) throw new Error(`pg_ctl stop -m ${mode} failed: ${r.output.trim()}`);
      running = false;
      // pg_ctl returns once the pid file is gone, a moment before the postmaster has exited.
      if (pid !== undefined) await waitFor(() => processGone(pid), { timeoutMs: 10_000, intervalMs: 10, message: `postmaster ${pid} to exit` });
    },
    async start() {
      if (destroyed) throw new Error('spawnPostgres: start() after teardown');
      if (running) return;
      await launch();
    },
    async restart(mode?: PostgresStopMode) {
      await handle.stop(mode);
      await handle.start();
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      killWatchdog(watchdog);
      if (running || readPid() !== undefined) {
        await pgExec('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', '-t', '15', '-s', 'stop'], 20_000);
        running = false;
      }
      await fs.promises.rm(dir, { recursive: true, force: true });
      disown(handle);
    },
    cleanupSync() {
      destroyed = true;
      killWatchdog(watchdog);
      if (readPid() !== undefined) pgExecSync('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', '-t', '10', '-s', 'stop'], 12_000);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };

  own(handle);
  t.teardown(() => handle.destroy());
  watchdog = startWatchdog(dir, pidFile, 'postgres', 'QUIT');
  try {
    const init = await pgExec(
      'initdb',
      ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-instructions', ...(fsync ? [] : ['--no-sync'])],
      60_000,
    );
    if (init.code !== 0) throw new Error(`initdb failed: ${init.output.trim()}`);
    fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), "\ninclude 'hatch.conf'\n");
    for (let attempt = 1; ; attempt++) {
      writeConf();
      try {
        await launch();
        break;
      } catch (err) {
        const inUse = /could not bind|address already in use/i.test(readFrom(logFile, logMark));
        if (!inUse || attempt >= 3) throw err;
        port = await freePort();
      }
    }
  } catch (err) {
    await handle.destroy();
    throw err;
  }
  return handle;
}

/**
 * spawnPostgres: a PostgreSQL server of the test's own for fault tests
 * (docs/reliability.md#the-harness), on a free port with its cluster in a temporary directory, so
 * a test can stop (fast or immediate) and restart it without touching the shared server other
 * test files use. Readiness is `pg_ctl -w` with a deadline, never a fixed sleep; watchdog.ts
 * makes sure it never outlives the test process.
 */
import { execFile, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Teardownable } from './db.js';
import { freePort, startOnFreePort } from './ports.js';
import { waitFor } from './wait.js';
import { disown, killWatchdog, makeTmpDir, own, processGone, startWatchdog, type Owned } from './watchdog.js';

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
  throw new Error(
    "spawnPostgres: PostgreSQL server binaries (initdb, pg_ctl) not found (pnpm test's preflight, scripts/test-tools.mjs, installs them: `apt-get install postgresql`; or set HATCH_PG_BIN)",
  );
}

/** initdb and postgres refuse to run as root: as root, run them as the `postgres` OS user. */
function pgRunAs(): { uid: number; gid: number; runuser: string } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  const u = id('-u');
  const g = id('-g');
  if (u.status !== 0 || g.status !== 0)
    throw new Error('spawnPostgres: running as root but there is no `postgres` OS user to run the server as');
  const runuser = ['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser'].find((p) => fs.existsSync(p));
  if (!runuser) throw new Error('spawnPostgres: running as root but `runuser` is missing');
  return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()), runuser };
}

// HATCH_TEST_RUN_ID: pnpm test finds, by it, a server a test left running (scripts/test.mjs)
const PG_ENV = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C', HATCH_TEST_RUN_ID: process.env.HATCH_TEST_RUN_ID };

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

const INITDB_ARGS = ['-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-instructions'];

/**
 * A fresh cluster's files, made by initdb once per PostgreSQL build and copied (`cp -a`, ~40 MB)
 * by each spawn without fsync: initdb is ~1 s of CPU and 5–7 s on a loaded 2-core machine, and a
 * test run spawns a server about twenty times. The copy is what initdb would have written (no
 * setting of ours is in it; hatch.conf is added to the copy). Kept in the temporary directory,
 * keyed by the server's version and initdb's arguments; made in a directory of its own and
 * renamed into place, so a spawn never copies half of one. Undefined when it cannot be made:
 * the spawn then runs initdb itself.
 */
async function clusterTemplate(as: ReturnType<typeof pgRunAs>): Promise<string | undefined> {
  const version = spawnSync(path.join(pgBinDir(), 'postgres'), ['-V'], { encoding: 'utf8' });
  if (version.status !== 0) return undefined;
  const key = createHash('sha256')
    .update(`${pgBinDir()}\0${version.stdout.trim()}\0${INITDB_ARGS.join(' ')}\0${as?.uid ?? process.getuid?.()}`)
    .digest('hex')
    .slice(0, 16);
  const template = path.join(os.tmpdir(), `hatch-pg-template-${key}`);
  if (fs.existsSync(path.join(template, 'PG_VERSION'))) return template;
  const work = fs.mkdtempSync(`${template}.partial-`);
  try {
    if (as) fs.chownSync(work, as.uid, as.gid);
    const init = await pgExec('initdb', ['-D', path.join(work, 'data'), ...INITDB_ARGS, '--no-sync'], 60_000);
    if (init.code !== 0) return undefined;
    try {
      fs.renameSync(path.join(work, 'data'), template);
    } catch {
      // another spawn made it meanwhile
    }
    return fs.existsSync(path.join(template, 'PG_VERSION')) ? template : undefined;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function copyCluster(template: string, dataDir: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('cp', ['-a', template, dataDir], { timeout: 60_000 }, (err) => resolve(!err));
  });
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
    const r = await pgExec(
      'pg_ctl',
      ['-D', dataDir, '-l', logFile, '-w', '-t', String(Math.ceil(startTimeoutMs / 1000)), '-s', 'start'],
      startTimeoutMs + 5_000,
    );
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
      if (pid !== undefined)
        await waitFor(() => processGone(pid), { timeoutMs: 10_000, intervalMs: 10, message: `postmaster ${pid} to exit` });
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
    // with fsync on, initdb of its own (it syncs what it writes; a copy would not)
    const template = fsync ? undefined : await clusterTemplate(as);
    if (!template || !(await copyCluster(template, dataDir))) {
      fs.rmSync(dataDir, { recursive: true, force: true });
      const init = await pgExec('initdb', ['-D', dataDir, ...INITDB_ARGS, ...(fsync ? [] : ['--no-sync'])], 60_000);
      if (init.code !== 0) throw new Error(`initdb failed: ${init.output.trim()}`);
    }
    fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), "\ninclude 'hatch.conf'\n");
    await startOnFreePort(
      async () => {
        writeConf();
        await launch();
      },
      () => /could not bind|address already in use/i.test(readFrom(logFile, logMark)),
      (p) => (port = p),
    );
  } catch (err) {
    await handle.destroy();
    throw err;
  }
  return handle;
}

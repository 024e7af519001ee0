/**
 * spawnNats: a nats-server of the test's own for fault tests (docs/reliability.md#the-harness),
 * on a free port with its JetStream store in a temporary directory, so a test can kill, stop and
 * restart it without touching the shared server other test files use. Readiness is polled with a
 * deadline (our server's INFO line), never a fixed sleep; watchdog.ts makes sure it never
 * outlives the test process.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Teardownable } from './db.js';
import { freePort, startOnFreePort } from './ports.js';
import { waitFor } from './wait.js';
import { disown, killWatchdog, makeTmpDir, own, startWatchdog, type Owned } from './watchdog.js';

/** The last `max` characters of a server's output, for failure messages. */
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
  /**
   * A node of a cluster (spawnNatsCluster): its route port and the route ports of the other
   * nodes, all on 127.0.0.1. The client port is then fixed too (it cannot move: the others'
   * clients list it).
   */
  cluster?: { name: string; routePort: number; peerRoutePorts: number[]; clientPort: number };
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
  const candidates = [
    fromEnv,
    ...(process.env.PATH ?? '').split(':').map((d) => path.join(d, 'nats-server')),
    '/usr/sbin/nats-server',
    '/usr/local/bin/nats-server',
  ];
  for (const c of candidates) {
    if (c && fs.existsSync(c)) return (natsBinCache = c);
  }
  throw new Error(
    "spawnNats: nats-server not found (pnpm test's preflight, scripts/test-tools.mjs, installs it: `apt-get install nats-server`; or set HATCH_NATS_SERVER_BIN)",
  );
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
  const clusterArgs = opts.cluster
    ? [
        '--cluster_name',
        opts.cluster.name,
        '--cluster',
        `nats://127.0.0.1:${opts.cluster.routePort}`,
        '--routes',
        opts.cluster.peerRoutePorts.map((p) => `nats://127.0.0.1:${p}`).join(','),
      ]
    : [];
  if (syncAlways) {
    const conf = path.join(dir, 'nats.conf');
    fs.writeFileSync(conf, `jetstream {\n  store_dir: ${JSON.stringify(storeDir)}\n  sync_interval: always\n}\n`);
    confArgs = ['-c', conf];
  }

  const out = new OutputTail();
  let launchOutput = '';
  let port = opts.cluster?.clientPort ?? (await freePort());
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let destroyed = false;
  let watchdog: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const args = ['-a', '127.0.0.1', '-p', String(port), '-n', name, ...confArgs, ...clusterArgs, ...(opts.args ?? [])];
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
    // A cluster node keeps its port (its peers' routes name it); a lone server may move once
    // someone took its port between freePort and bind.
    await startOnFreePort(
      launch,
      () => /address already in use/i.test(launchOutput),
      (p) => (port = p),
      opts.cluster ? 1 : 3,
    );
  } catch (err) {
    await handle.destroy();
    throw err;
  }
  return handle;
}

import t from 'tap';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { freePort, startOnFreePort } from '../src/ports.js';
import { spawnNats } from '../src/spawn-nats.js';
import { spawnPostgres } from '../src/spawn-postgres.js';
import { processGone } from '../src/watchdog.js';
import { waitFor } from '../src/wait.js';

const srcDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src');

const alive = (pid: number | undefined) => pid !== undefined && !processGone(pid);

t.test('freePort returns distinct ports that can be bound on 127.0.0.1', async (t) => {
  const a = await freePort();
  const b = await freePort();
  t.not(a, b);
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(a, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  t.pass('bound the returned port');
});

t.test(
  'freePort returns ports below the kernel ephemeral range, where no listen(0) or outgoing connection of another test can take them',
  async (t) => {
    let range: string;
    try {
      range = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
    } catch {
      t.pass('no /proc here: listen(0) ports, nothing to check');
      return;
    }
    const low = Number(range.trim().split(/\s+/)[0]);
    for (let i = 0; i < 20; i++) {
      const p = await freePort();
      t.ok(p >= 10_000 && p < low, `${p} in [10000, ${low})`);
    }
  },
);

t.test('startOnFreePort moves a first start whose port was taken to a fresh port, and gives up after its attempts', async (t) => {
  const listen = (srv: net.Server, port: number) =>
    new Promise<void>((resolve, reject) => srv.once('error', reject).listen({ port, host: '127.0.0.1', exclusive: true }, resolve));
  const close = (srv: net.Server) => new Promise<void>((resolve) => srv.close(() => resolve()));
  const blocker = net.createServer();
  const taken = await freePort();
  await listen(blocker, taken);
  t.teardown(() => close(blocker));

  let port = taken;
  let lastCode = '';
  let server: net.Server | undefined;
  await startOnFreePort(
    async () => {
      const srv = net.createServer();
      try {
        await listen(srv, port);
        server = srv;
      } catch (err) {
        lastCode = (err as NodeJS.ErrnoException).code ?? '';
        throw err;
      }
    },
    () => lastCode === 'EADDRINUSE',
    (p) => (port = p),
  );
  t.equal(lastCode, 'EADDRINUSE', 'the first start found the port taken');
  t.not(port, taken, 'moved to another port');
  t.equal((server?.address() as net.AddressInfo | undefined)?.port, port, 'listening on the new one');
  if (server) await close(server);

  let calls = 0;
  const fail = (msg: string) => async () => {
    calls++;
    throw new Error(msg);
  };
  await t.rejects(
    startOnFreePort(
      fail('bad config'),
      () => false,
      () => t.fail('moved on an unrelated failure'),
    ),
    /bad config/,
  );
  t.equal(calls, 1, 'a failure that is not the port is not retried');
  calls = 0;
  await t.rejects(
    startOnFreePort(
      fail('still taken'),
      () => true,
      () => undefined,
      3,
    ),
    /still taken/,
  );
  t.equal(calls, 3, 'at most `attempts` starts');
});

t.test('spawnNats: a JetStream stream and its acked messages survive kill -9 and a start on the same port', async (t) => {
  const nats = await spawnNats(t);
  t.match(nats.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
  t.not(nats.port, 4222, 'its own port, not the shared server');
  const port = nats.port;

  const nc = await connect({ servers: nats.url, reconnect: false });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'SPAWN_T', subjects: ['spawn.t.>'] });
  const js = jetstream(nc);
  for (let i = 0; i < 25; i++) await js.publish(`spawn.t.${i}`, `m${i}`);
  t.equal((await jsm.streams.info('SPAWN_T')).state.messages, 25);

  const pid = nats.pid;
  const closed = nc.closed();
  await nats.kill();
  t.notOk(nats.running);
  t.notOk(alive(pid), 'the server process is gone');
  await closed;
  t.pass('the client saw its connection drop');
  await t.rejects(connect({ servers: nats.url, reconnect: false, timeout: 1000 }), 'a new connection is refused while it is down');

  await nats.start();
  t.equal(nats.port, port, 'same port after start');
  t.ok(nats.running);
  const nc2 = await connect({ servers: nats.url, reconnect: false });
  t.teardown(() => nc2.close());
  const info = await (await jetstreamManager(nc2)).streams.info('SPAWN_T');
  t.equal(info.state.messages, 25, 'every acked message is still in the stream');
  const m = await jetstream(nc2)
    .streams.get('SPAWN_T')
    .then((s) => s.getMessage({ seq: 25 }));
  t.equal(m?.string(), 'm24');
});

t.test('spawnNats: stop() is graceful, restart() keeps the port and the store', async (t) => {
  const nats = await spawnNats(t);
  const nc = await connect({ servers: nats.url, reconnect: false });
  await (await jetstreamManager(nc)).streams.add({ name: 'SPAWN_R', subjects: ['spawn.r'] });
  await jetstream(nc).publish('spawn.r', 'x');
  await nc.close();
  await nats.restart();
  const nc2 = await connect({ servers: nats.url, reconnect: false });
  t.teardown(() => nc2.close());
  t.equal((await (await jetstreamManager(nc2)).streams.info('SPAWN_R')).state.messages, 1);
  t.match(nats.output(), /Server is ready/, 'the server log is kept for failure messages');
});

t.test('spawnNats({ syncAlways }) starts, and says whether this nats-server applied sync_interval: always', async (t) => {
  const nats = await spawnNats(t, { syncAlways: true });
  t.type(nats.syncAlways, 'boolean');
  // nats-server 2.9.10 does not know sync_interval (it arrived in 2.10): the option is ignored there.
  const nc = await connect({ servers: nats.url, reconnect: false });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'SPAWN_S', subjects: ['spawn.s'] });
  await jetstream(nc).publish('spawn.s', 'x');
  t.equal((await jsm.streams.info('SPAWN_S')).state.messages, 1);
  t.comment(`sync_interval: always applied: ${nats.syncAlways}`);
});

t.test('spawnPostgres: committed rows survive an immediate (crash) stop and a fast restart', async (t) => {
  const pg = await spawnPostgres(t);
  t.match(pg.url, /^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
  t.not(pg.port, 5432);
  const port = pg.port;
  const sql = postgres(pg.url, { max: 2, onnotice: () => {}, connect_timeout: 2, idle_timeout: 1 });
  t.teardown(() => sql.end({ timeout: 1 }));

  await sql`CREATE TABLE spawn_t (id int PRIMARY KEY, v text NOT NULL)`;
  await sql`INSERT INTO spawn_t SELECT g, 'v' || g FROM generate_series(1, 100) g`;

  const pid = pg.pid;
  t.ok(alive(pid), 'postmaster running');
  await pg.stop('immediate');
  t.notOk(pg.running);
  t.notOk(alive(pid), 'postmaster gone');
  await t.rejects(sql`SELECT 1`, 'queries fail while it is down');

  await pg.start();
  t.equal(pg.port, port, 'same port after start');
  const [row] = await sql<{ n: string }[]>`SELECT count(*) AS n FROM spawn_t`;
  t.equal(Number(row?.n), 100, 'every committed row is back after crash recovery');

  await pg.restart('fast');
  const [again] = await sql<{ v: string }[]>`SELECT v FROM spawn_t WHERE id = 42`;
  t.equal(again?.v, 'v42', 'and after a fast restart');
  t.match(pg.output(), /database system is ready to accept connections/);
});

t.test('spawnPostgres: settings apply; fsync off by default and configurable', async (t) => {
  const [a, b] = await Promise.all([
    spawnPostgres(t),
    spawnPostgres(t, { fsync: true, settings: { application_name: 'hatch spawn', work_mem: '8MB' } }),
  ]);
  t.not(a.port, b.port, 'two clusters side by side');
  const sa = postgres(a.url, { max: 1, onnotice: () => {} });
  const sb = postgres(b.url, { max: 1, onnotice: () => {} });
  t.teardown(async () => {
    await sa.end({ timeout: 1 });
    await sb.end({ timeout: 1 });
  });
  t.equal((await sa`SHOW fsync`)[0]?.fsync, 'off');
  t.equal((await sb`SHOW fsync`)[0]?.fsync, 'on');
  t.equal((await sb`SHOW work_mem`)[0]?.work_mem, '8MB');
  t.equal((await sa`SHOW listen_addresses`)[0]?.listen_addresses, '127.0.0.1');
});

t.test('a server that cannot start fails the spawn with its own log', async (t) => {
  await t.rejects(
    spawnNats(t, { args: ['--no-such-flag'] }),
    /nats-server exited during start[\s\S]*--- nats-server output ---[\s\S]*no-such-flag/,
  );
  await t.rejects(spawnPostgres(t, { settings: { no_such_setting: 1 } }), /PostgreSQL did not start[\s\S]*no_such_setting/);
});

t.test('teardown stops the servers and removes their directories', async (t) => {
  let natsPid: number | undefined;
  let pgPid: number | undefined;
  let dirs: string[] = [];
  await t.test('a test that owns both', async (tt) => {
    const [nats, pg] = await Promise.all([spawnNats(tt), spawnPostgres(tt)]);
    natsPid = nats.pid;
    pgPid = pg.pid;
    dirs = [path.dirname(nats.storeDir), path.dirname(pg.dataDir)];
    tt.ok(alive(natsPid) && alive(pgPid));
    tt.ok(dirs.every((d) => fs.existsSync(d)));
  });
  t.notOk(alive(natsPid), 'nats-server gone');
  await waitFor(() => !alive(pgPid), { timeoutMs: 5000, message: 'postmaster gone' });
  t.notOk(alive(pgPid), 'postmaster gone');
  t.same(
    dirs.filter((d) => fs.existsSync(d)),
    [],
    'directories removed',
  );
});

/** Runs a child process that spawns both servers and reports them, for the orphan tests. */
async function childThatSpawns(t: { teardown(fn: () => unknown): void }, ending: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hatch-spawn-child-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const script = path.join(dir, 'child.mts');
  fs.writeFileSync(
    script,
    `import { spawnNats } from ${JSON.stringify(path.join(srcDir, 'spawn-nats.ts'))};
import { spawnPostgres } from ${JSON.stringify(path.join(srcDir, 'spawn-postgres.ts'))};
const t = { teardown() {} }; // no teardown ever runs: only the exit hooks and the watchdog can clean up
const [nats, pg] = await Promise.all([spawnNats(t), spawnPostgres(t)]);
process.stdout.write(JSON.stringify({ natsPid: nats.pid, pgPid: pg.pid, dirs: [nats.storeDir, pg.dataDir] }) + '\\n');
${ending}
`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  await waitFor(() => out.includes('\n') || child.exitCode !== null, { timeoutMs: 30_000, message: 'child reported its servers' });
  const info = JSON.parse(out.split('\n')[0] ?? '') as { natsPid: number; pgPid: number; dirs: string[] };
  return { child, info, exited };
}

t.test('a test process that exits without teardown leaves no server and no directory behind', async (t) => {
  const { info, exited } = await childThatSpawns(t, 'setTimeout(() => process.exit(0), 50);');
  await exited;
  await waitFor(() => !alive(info.natsPid) && !alive(info.pgPid), { timeoutMs: 10_000, message: 'servers stopped by the exit hook' });
  t.same(
    info.dirs.filter((d) => fs.existsSync(d)),
    [],
    'directories removed by the exit hook',
  );
});

t.test('a test process ended by SIGTERM leaves nothing behind', async (t) => {
  const { child, info, exited } = await childThatSpawns(t, 'setInterval(() => {}, 1000);');
  child.kill('SIGTERM');
  await exited;
  t.equal(child.signalCode, 'SIGTERM', 'the signal still ends the process');
  await waitFor(() => !alive(info.natsPid) && !alive(info.pgPid), { timeoutMs: 10_000, message: 'servers stopped by the signal hook' });
  t.same(
    info.dirs.filter((d) => fs.existsSync(d)),
    [],
  );
});

t.test('a test process killed with SIGKILL: the watchdog stops the servers and removes the directories', async (t) => {
  const { child, info, exited } = await childThatSpawns(t, 'setInterval(() => {}, 1000);');
  child.kill('SIGKILL');
  await exited;
  await waitFor(() => !alive(info.natsPid) && !alive(info.pgPid), { timeoutMs: 15_000, message: 'servers stopped by the watchdog' });
  await waitFor(() => info.dirs.every((d) => !fs.existsSync(d)), { timeoutMs: 10_000, message: 'directories removed by the watchdog' });
  t.pass('nothing left');
});

/**
 * docker-compose.yaml (issue 9): validated by Docker Compose itself (`docker-compose config`,
 * Debian's), then its invariants checked on the resolved model.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { freePort, REPO_ROOT, waitFor } from '@hatch/testing';
import { ACCOUNTS_SETTINGS, requireTool, run, yamlDocs, type Doc } from './tools.js';

const HATCH = ['gateway', 'sms-sender', 'email-sender', 'realtime-bridge'];

/** `docker-compose config`'s answer for each set of arguments, run once (the files do not change during the run) */
const configRuns = new Map<string, ReturnType<typeof run>>();

async function resolved(args: string[]): Promise<Doc> {
  const key = JSON.stringify(args);
  let pending = configRuns.get(key);
  if (!pending) {
    pending = run('docker-compose', ['-f', path.join(REPO_ROOT, 'docker-compose.yaml'), ...args, 'config'], { cwd: REPO_ROOT });
    configRuns.set(key, pending);
  }
  const r = await pending;
  t.equal(r.code, 0, `docker-compose ${args.join(' ')} config accepts the file: ${r.stderr.trim()}`);
  const [doc] = yamlDocs(r.stdout);
  if (!doc) throw new Error('docker-compose config printed nothing');
  return doc;
}

t.before(() => requireTool('docker-compose'));

t.test('compose validates; only the emulator (dev) and the other NATS nodes (cluster) are in a profile', async (t) => {
  const c = await resolved([]);
  t.same(Object.keys(c.services).sort(), [
    'email-sender',
    'gateway',
    'migrate',
    'nats',
    'nats-2',
    'nats-3',
    'postgres',
    'provider-emulator',
    'proxy',
    'realtime-bridge',
    'sms-sender',
  ]);
  for (const [name, s] of Object.entries(c.services as Record<string, Doc>)) {
    if (name === 'provider-emulator') t.same(s.profiles, ['dev'], 'the emulator runs only with --profile dev');
    else if (name === 'nats-2' || name === 'nats-3') t.same(s.profiles, ['cluster'], `${name} runs only with --profile cluster`);
    else t.notOk(s.profiles, `${name} runs without a profile`);
  }
});

t.test('PostgreSQL 15 and NATS >= 2.12.3 with volumes and healthchecks', async (t) => {
  const c = await resolved([]);
  const pg = c.services.postgres;
  t.match(pg.image, /^postgres:15/);
  t.equal(pg.environment.POSTGRES_PASSWORD_FILE, '/run/secrets/postgres_password', 'password from a compose secret');
  t.ok(pg.volumes?.length, 'postgres has a volume');
  t.ok(pg.healthcheck?.test, 'postgres healthcheck');
  const nats = c.services.nats;
  const m = /^nats:(\d+)\.(\d+)\.(\d+)/.exec(nats.image);
  t.ok(m, `nats image pinned to a version (${nats.image})`);
  const [maj, min, pat] = (m ?? []).slice(1).map(Number) as [number, number, number];
  t.ok(maj > 2 || (maj === 2 && (min > 12 || (min === 12 && pat >= 3))), `nats ${nats.image} >= 2.12.3`);
  t.ok(nats.command.includes('-js'), 'JetStream enabled');
  t.ok(nats.volumes?.length, 'nats has a volume');
  t.match(JSON.stringify(nats.healthcheck.test), /8222\/healthz/, 'healthcheck on the monitoring port');
  t.ok(c.secrets.postgres_password.file.endsWith('.secrets/postgres_password'), 'secrets come from .secrets/');
});

t.test('every Hatch service waits for a completed migration, restarts, is limited, on hatch-network', async (t) => {
  const c = await resolved(['--profile', 'dev']);
  t.match(c.services.migrate.command.join(' '), /migrate-cli/);
  for (const name of HATCH) {
    const s = c.services[name];
    t.equal(s.depends_on?.migrate?.condition, 'service_completed_successfully', `${name} waits for migrate`);
    t.equal(s.depends_on?.postgres?.condition, 'service_healthy', `${name} waits for a healthy postgres`);
    t.equal(s.restart, 'unless-stopped', `${name} restart policy`);
    t.ok(s.deploy?.resources?.limits?.memory, `${name} memory limit`);
    t.ok(s.networks && 'hatch-network' in s.networks, `${name} on hatch-network`);
    t.equal(s.build?.args?.SERVICE, name, `${name} builds its own image target`);
    for (const [k, v] of Object.entries(s.environment ?? {})) {
      // (HATCH_PASSWORD_HASH_*: how many password hashes run at once, no secret)
      if (/TOKEN|PASSWORD|API_KEY/.test(k) && !k.startsWith('HATCH_PASSWORD_HASH_'))
        t.ok(k.endsWith('_FILE') && String(v).startsWith('/run/secrets/'), `${name}: ${k} is a secret file, not a value`);
    }
  }
  t.equal(c.services['realtime-bridge'].deploy.replicas, 2, 'bridge runs with a standby');
  t.same(c.services['provider-emulator'].profiles, ['dev']);
  t.equal(c.networks['hatch-network'].name, 'hatch-network');
});

t.test(
  'profile cluster (deploy/cluster.env): three NATS nodes clustered with JetStream, every stream replicated 3 ways, every client told of all three',
  async (t) => {
    const single = await resolved([]);
    t.same(
      Object.keys(single.services).filter((n) => n.startsWith('nats') && !single.services[n].profiles),
      ['nats'],
      'by default one NATS',
    );
    t.equal(single.services.gateway.environment.HATCH_STREAM_REPLICAS, '1', 'by default one copy of each stream');
    for (const { key, value } of ACCOUNTS_SETTINGS)
      t.equal(single.services.gateway.environment[key], value, `gateway: ${key} at its default (issue 18)`);
    const c = await resolved(['--env-file', path.join(REPO_ROOT, 'deploy/cluster.env')]);
    const nodes = ['nats', 'nats-2', 'nats-3'];
    const clusterConf = fs.readFileSync(path.join(REPO_ROOT, 'deploy/nats/cluster.conf'), 'utf8');
    const routes = [...clusterConf.matchAll(/nats-route:\/\/([a-z0-9-]+):6222/g)].map((m) => m[1]);
    t.same(routes.sort(), nodes, 'cluster.conf routes to all three nodes');
    t.match(clusterConf, /listen: 0\.0\.0\.0:6222/, 'each node listens for routes');
    const volumes = new Set<string>();
    for (const name of nodes) {
      const n = c.services[name];
      if (!n) {
        t.fail(`${name} missing from the cluster profile`);
        continue;
      }
      const cmd = (n.command as string[]).join(' ');
      t.match(cmd, /(^| )-js( |$)/, `${name}: JetStream`);
      t.match(cmd, /-c \/etc\/nats\/cluster\.conf/, `${name}: the cluster configuration`);
      t.match(cmd, new RegExp(`--server_name ${name}( |$)`), `${name}: its own server name`);
      t.match(n.image, single.services.nats.image, `${name}: the same pinned image`);
      t.ok(n.healthcheck?.test, `${name}: healthcheck`);
      const store = (n.volumes as Array<string | Doc>)
        .map((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}`))
        .find((v) => v.endsWith(':/data') || v.includes(':/data:'));
      t.ok(store, `${name}: a store volume`);
      volumes.add(String(store).split(':')[0] ?? '');
    }
    t.equal(volumes.size, 3, 'each node its own store');
    for (const name of HATCH) {
      const env = c.services[name].environment;
      t.equal(env.HATCH_STREAM_REPLICAS, '3', `${name}: streams replicated 3 ways`);
      t.same(
        String(env.NATS_URL).split(',').sort(),
        nodes.map((n) => `nats://${n}:4222`).sort(),
        `${name}: NATS_URL lists all three nodes`,
      );
    }
  },
);

t.test('the gateway scales behind an SSE-safe proxy', async (t) => {
  const c = await resolved([]);
  t.notOk(c.services.gateway.ports, 'gateway publishes no host port (replicas would clash)');
  t.ok(c.services.proxy.ports?.length, 'the proxy publishes the port');
  const conf = fs.readFileSync(path.join(REPO_ROOT, 'deploy/nginx.conf'), 'utf8');
  t.match(conf, /proxy_buffering off;/);
  t.match(conf, /proxy_read_timeout 1h;/);
  t.match(conf, /resolver 127\.0\.0\.11/, 're-resolves gateway replicas');
});

t.test('the bundled nginx does not route /metrics in any spelling (scraped on the pod), and proxies the rest', async (t) => {
  const nginx = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p));
  if (!nginx) throw new Error("nginx is not installed (pnpm test's preflight, scripts/test-tools.mjs, installs it)");
  // A stand-in gateway that records every request nginx passes on.
  const seen: string[] = [];
  const upstream = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    res.end('from the gateway');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => upstream.close(() => r())));
  const upstreamPort = (upstream.address() as AddressInfo).port;

  // deploy/nginx.conf as compose runs it, but on free local ports, in a directory of its own.
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hatch-nginx-conf-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  let conf = fs.readFileSync(path.join(REPO_ROOT, 'deploy/nginx.conf'), 'utf8');
  const swaps: Array<[RegExp, string]> = [
    [/listen 8080;/, `listen 127.0.0.1:${port};`],
    [/set \$gateway http:\/\/gateway:5002;/, `set $gateway http://127.0.0.1:${upstreamPort};`],
    [/worker_processes auto;/, `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log warn;`],
    [/worker_connections \d+;/, 'worker_connections 64;'],
    [
      /http \{/,
      `http { client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;`,
    ],
  ];
  for (const [from, to] of swaps) {
    t.match(conf, from, `deploy/nginx.conf still has ${from}`);
    conf = conf.replace(from, to);
  }
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const child = spawn(nginx, ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  });
  // The request target goes on the wire as written (fetch would normalise it).
  const get = (target: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port, path: target, method: 'GET', headers: { host: 'hatch.example.com' }, agent: false },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
      return get('/healthz').then(
        (r) => r.status === 200,
        () => false,
      );
    },
    { timeoutMs: 10_000, message: 'nginx listening' },
  );

  for (const target of [
    '/metrics',
    '/metrics/',
    '/metrics?format=prometheus',
    '//metrics',
    '/%6Detrics',
    '/%6detrics',
    '/./metrics',
    '/api/../metrics',
    '/metrics;x',
    'http://anything/metrics',
    'http://gateway:5002/metrics',
  ]) {
    const r = await get(target);
    t.equal(r.status, 404, `${target} → 404 at the proxy`);
  }
  t.same(seen, [], 'none of them reached the gateway');
  for (const target of ['/', '/api/conversations', '/webhooks/twilio/status', '/readyz']) {
    const r = await get(target);
    t.equal(r.body, 'from the gateway', `${target} is proxied`);
  }
  t.equal(seen.length, 4);
});

t.test('the image: multi-stage, prod-only deploy, non-root, healthcheck, no secrets', async (t) => {
  const df = fs.readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8');
  t.ok((df.match(/^FROM /gm) ?? []).length >= 2, 'multi-stage');
  t.match(df, /deploy --prod/);
  t.match(df, /^USER node$/m);
  t.match(df, /^HEALTHCHECK /m);
  t.notMatch(df, /(TOKEN|PASSWORD|API_KEY)=/, 'no secret in the image');
  const ignore = fs.readFileSync(path.join(REPO_ROOT, '.dockerignore'), 'utf8');
  for (const p of ['.secrets', '.env', '**/node_modules']) t.ok(ignore.split('\n').includes(p), `.dockerignore has ${p}`);
});

t.test(
  'dev profile: the emulator signs SendGrid events with a key from .secrets/, whose public half the gateway takes from .env (issue 14: no unsigned mode)',
  async (t) => {
    const c = await resolved(['--profile', 'dev']);
    const emu = c.services['provider-emulator'];
    t.equal(emu.environment.EMULATOR_SENDGRID_SIGNING_KEY_FILE, '/run/secrets/sendgrid_webhook_signing_key');
    t.ok(
      (emu.secrets as Array<{ source: string }>).some((s) => s.source === 'sendgrid_webhook_signing_key'),
      'mounted as a compose secret',
    );
    t.ok(c.secrets.sendgrid_webhook_signing_key.file.endsWith('.secrets/sendgrid_webhook_signing_key'), 'the file ./setup.sh writes');
    const setup = fs.readFileSync(path.join(REPO_ROOT, 'setup.sh'), 'utf8');
    t.match(setup, /SG_SIGNING_KEY_FILE="\$SECRETS_DIR\/sendgrid_webhook_signing_key"/, 'setup.sh writes that file');
    t.ok('SENDGRID_WEBHOOK_PUBLIC_KEY' in c.services.gateway.environment, "the gateway's key comes from .env");
  },
);

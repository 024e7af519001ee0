/**
 * docker-compose.yaml (issue 9): validated by Docker Compose itself (`docker-compose config`,
 * Debian's), then its invariants checked on the resolved model.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { REPO_ROOT } from '@hatch/testing';
import { requireTool, run, yamlDocs, type Doc } from './tools.js';

const HATCH = ['gateway', 'sms-sender', 'email-sender', 'realtime-bridge'];

async function resolved(args: string[]): Promise<Doc> {
  const r = await run('docker-compose', ['-f', path.join(REPO_ROOT, 'docker-compose.yaml'), ...args, 'config'], { cwd: REPO_ROOT });
  t.equal(r.code, 0, `docker-compose ${args.join(' ')} config accepts the file: ${r.stderr.trim()}`);
  const [doc] = yamlDocs(r.stdout);
  if (!doc) throw new Error('docker-compose config printed nothing');
  return doc;
}

t.before(() => requireTool('docker-compose'));

t.test('compose validates; only the emulator is in a profile (dev)', async (t) => {
  const c = await resolved([]);
  t.same(Object.keys(c.services).sort(), ['email-sender', 'gateway', 'migrate', 'nats', 'postgres', 'provider-emulator', 'proxy', 'realtime-bridge', 'sms-sender']);
  for (const [name, s] of Object.entries(c.services as Record<string, Doc>)) {
    if (name === 'provider-emulator') t.same(s.profiles, ['dev'], 'the emulator runs only with --profile dev');
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
      if (/TOKEN|PASSWORD|API_KEY/.test(k)) t.ok(k.endsWith('_FILE') && String(v).startsWith('/run/secrets/'), `${name}: ${k} is a secret file, not a value`);
    }
  }
  t.equal(c.services['realtime-bridge'].deploy.replicas, 2, 'bridge runs with a standby');
  t.same(c.services['provider-emulator'].profiles, ['dev']);
  t.equal(c.networks['hatch-network'].name, 'hatch-network');
});

t.test('the gateway scales behind an SSE-safe proxy', async (t) => {
  const c = await resolved([]);
  t.notOk(c.services.gateway.ports, 'gateway publishes no host port (replicas would clash)');
  t.ok(c.services.proxy.ports?.length, 'the proxy publishes the port');
  const conf = fs.readFileSync(path.join(REPO_ROOT, 'deploy/nginx.conf'), 'utf8');
  t.match(conf, /proxy_buffering off;/);
  t.match(conf, /proxy_read_timeout 1h;/);
  t.match(conf, /resolver 127\.0\.0\.11/, 're-resolves gateway replicas');
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

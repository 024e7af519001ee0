/**
 * ./setup.sh (issue 9): `--yes --no-start` in a temporary copy of the checkout against a fresh
 * database writes .env and .secrets/ (700 / 600), applies the migrations, keeps the token when run
 * again, and a bad DATABASE_URL stops it with one clear line and exit 1. shellcheck-clean.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { createEmptyDatabase, REPO_ROOT, testNatsUrl } from '@hatch/testing';
import { requireTool, run } from './tools.js';
import { copyCheckout, mode, psql, setupEnv } from './setup-helpers.js';

// A whole setup (install, web UI build, migrations) takes about a minute on a loaded 2-core machine.
t.setTimeout(420_000);

t.test('setup.sh passes shellcheck', async (t) => {
  await requireTool('shellcheck');
  const r = await run('shellcheck', ['setup.sh'], { cwd: REPO_ROOT });
  t.equal(r.code, 0, r.stdout);
});

t.test('--yes --no-start: .env, .secrets 700/600, migrations applied; a second run keeps the token', async (t) => {
  const dir = await copyCheckout(t);
  const url = await createEmptyDatabase(t);
  const env = setupEnv({ DATABASE_URL: url, NATS_URL: testNatsUrl() });
  const first = await run('./setup.sh', ['--yes', '--no-start'], { cwd: dir, env, timeoutMs: 240_000 });
  t.equal(first.code, 0, `setup exits 0\n${first.stdout}\n${first.stderr}`);
  t.ok(fs.existsSync(path.join(dir, '.env')), '.env written');
  const envText = fs.readFileSync(path.join(dir, '.env'), 'utf8');
  t.equal(mode(path.join(dir, '.secrets')), '700', '.secrets is 700');
  const tokenFile = path.join(dir, '.secrets/hatch_api_token');
  for (const f of fs.readdirSync(path.join(dir, '.secrets'))) t.equal(mode(path.join(dir, '.secrets', f)), '600', `.secrets/${f} is 600`);
  const token = fs.readFileSync(tokenFile, 'utf8').trim();
  t.ok(token.length >= 32, 'a long random token');
  t.notOk(envText.includes(token), 'the token is not in .env');
  t.match(envText, new RegExp(`HATCH_API_TOKEN_FILE=${tokenFile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`), '.env points at the token file');
  t.notOk(first.stdout.includes(token) && !first.stdout.includes('#token='), 'the token is only printed inside the login link');

  const applied = () => psql(url, 'SELECT name FROM schema_migrations ORDER BY name');
  const files = fs.readdirSync(path.join(REPO_ROOT, 'sql')).filter((f) => f.endsWith('.sql')).sort();
  t.same(await applied(), files, 'every migration applied once');

  const second = await run('./setup.sh', ['--yes', '--no-start'], { cwd: dir, env, timeoutMs: 240_000 });
  t.equal(second.code, 0, `second run exits 0\n${second.stderr}`);
  t.equal(fs.readFileSync(tokenFile, 'utf8').trim(), token, 'the token is kept');
  t.equal(fs.readFileSync(path.join(dir, '.env'), 'utf8'), envText, '.env is kept as it was');
  t.same(await applied(), files, 'nothing applied twice');
});

t.test('a bad DATABASE_URL stops setup with one clear line and exit 1', async (t) => {
  const dir = await copyCheckout(t);
  const env = setupEnv({ DATABASE_URL: 'postgres://postgres@127.0.0.1:1/hatch', NATS_URL: testNatsUrl() });
  const r = await run('./setup.sh', ['--yes', '--no-start'], { cwd: dir, env, timeoutMs: 120_000 });
  t.equal(r.code, 1, 'exit 1');
  const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('setup: '));
  t.equal(lines.length, 1, `one error line: ${r.stderr}`);
  t.match(lines[0] ?? '', /PostgreSQL|database|DATABASE_URL/i, 'it names the database');
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
});

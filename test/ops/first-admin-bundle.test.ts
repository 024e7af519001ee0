/**
 * The first-admin command from a build (issue 18): `pnpm build` bundles it into the gateway's
 * dist/first-admin.js (scripts/bundle.mjs COMMANDS), which the image holds, so
 * `docker compose run --rm gateway node dist/first-admin.js` and
 * `kubectl exec deploy/gateway -- node dist/first-admin.js` run it without the checkout, tsx or
 * pnpm. Bundled here into an empty directory (nothing beside it to resolve from, as in a bare
 * image layer) and run with plain node against a real database: status, then a pending admin
 * with a one-time link, then no second admin.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { createTestDb, REPO_ROOT } from '@hatch/testing';
import { run } from './tools.js';

interface BundleModule {
  COMMANDS: Record<string, Record<string, string>>;
  bundleEntry: (dir: string, entry: string, outfile: string) => Promise<void>;
}
const { COMMANDS, bundleEntry } = (await import(pathToFileURL(path.join(REPO_ROOT, 'scripts/bundle.mjs')).href)) as BundleModule;

/** Only what an image's environment holds: no NODE_OPTIONS (tsx), no workspace to resolve from. */
const runAlone = (file: string, args: string[], env: Record<string, string>) =>
  run(process.execPath, [file, ...args], { cwd: path.dirname(file), env: { PATH: process.env.PATH ?? '', ...env } });

t.setTimeout(180_000);

t.test('the build bundles the first-admin command into one file that runs alone with node', async (t) => {
  const entry = COMMANDS.gateway?.['first-admin'];
  t.equal(entry, 'src/first-admin-cli.ts', 'the gateway image gets dist/first-admin.js from the CLI');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hatch-first-admin-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'first-admin.js');
  await bundleEntry(path.join(REPO_ROOT, 'services/gateway'), entry ?? '', file);

  const db = await createTestDb(t);
  const env = { DATABASE_URL: db.url, PUBLIC_URL: 'https://hatch.example.test', HATCH_ADMIN_EMAIL: 'ops@example.test' };
  t.match(await runAlone(file, ['--status'], env), { code: 0, stdout: 'none\n' }, 'no admin yet');
  const made = await runAlone(file, [], env);
  t.equal(made.code, 0, made.stderr);
  t.match(
    made.stdout,
    /^link ops@example\.test https:\/\/hatch\.example\.test\/invite#[A-Za-z0-9_-]{43} \S+Z\n$/,
    'a pending admin and its link',
  );
  t.match(await runAlone(file, ['--status'], env), { code: 0, stdout: 'pending ops@example.test\n' });
  const rows = await db.sql`SELECT count(*)::int AS n FROM users WHERE role = 'admin'`;
  t.equal(rows[0]?.n, 1, 'one admin');
});

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import t from 'tap';
import { createEmptyDatabase } from '@hatch/testing';
import { defaultMigrationsDir, migrate, MigrationError, readMigrations } from '../src/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

function tempMigrations(t: { teardown(fn: () => void): void }, files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hatch-mig-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const [name, sql] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), sql);
  return dir;
}

async function query<T extends object>(url: string, fn: (sql: postgres.Sql) => Promise<T[]>): Promise<T[]> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await fn(sql);
  } finally {
    await sql.end();
  }
}

t.test('applies files in order, each once, creating the database if missing', async (t) => {
  const url = await createEmptyDatabase(t);
  const dir = tempMigrations(t, {
    '0002_b.sql': 'INSERT INTO a (v) VALUES (2);',
    '0001_a.sql': 'CREATE TABLE a (v int); INSERT INTO a (v) VALUES (1);',
  });
  const first = await migrate({ url, dir });
  t.ok(first.createdDatabase, 'database created');
  t.same(first.applied, ['0001_a.sql', '0002_b.sql'], 'in name order');
  const second = await migrate({ url, dir });
  t.same(second.applied, [], 'second run applies nothing');
  t.same(second.alreadyApplied, ['0001_a.sql', '0002_b.sql']);
  const rows = await query(url, (sql) => sql<{ v: number }[]>`SELECT v FROM a ORDER BY v`);
  t.same(rows.map((r) => r.v), [1, 2], 'each file ran exactly once');
  const recorded = await query(url, (sql) => sql<{ name: string; checksum: string }[]>`SELECT name, checksum FROM schema_migrations ORDER BY name`);
  t.equal(recorded.length, 2);
  t.match(recorded[0]?.checksum, /^[0-9a-f]{64}$/);
});

t.test('a failing migration rolls back whole and is not recorded', async (t) => {
  const url = await createEmptyDatabase(t);
  const dir = tempMigrations(t, { '0001_ok.sql': 'CREATE TABLE ok (v int);', '0002_bad.sql': 'CREATE TABLE half (v int); SELECT nope_no_such_function();' });
  await t.rejects(migrate({ url, dir }));
  const tables = await query(url, (sql) => sql<{ tablename: string }[]>`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`);
  t.same(tables.map((r) => r.tablename), ['ok', 'schema_migrations'], 'the failed file left nothing behind');
  const recorded = await query(url, (sql) => sql<{ name: string }[]>`SELECT name FROM schema_migrations`);
  t.same(recorded.map((r) => r.name), ['0001_ok.sql']);
});

t.test('refuses when an applied file changed, and applies nothing new', async (t) => {
  const url = await createEmptyDatabase(t);
  const dir = tempMigrations(t, { '0001_a.sql': 'CREATE TABLE a (v int);' });
  await migrate({ url, dir });
  fs.writeFileSync(path.join(dir, '0001_a.sql'), 'CREATE TABLE a (v bigint);');
  fs.writeFileSync(path.join(dir, '0002_b.sql'), 'CREATE TABLE b (v int);');
  await t.rejects(migrate({ url, dir }), /0001_a\.sql/);
  await t.rejects(migrate({ url, dir }), MigrationError);
  const tables = await query(url, (sql) => sql<{ tablename: string }[]>`SELECT tablename FROM pg_tables WHERE tablename = 'b'`);
  t.equal(tables.length, 0, '0002 was not applied');
});

t.test('refuses badly named or duplicate-numbered files', async (t) => {
  t.throws(() => readMigrations(tempMigrations(t, { 'init.sql': 'SELECT 1;' })), /0001_name\.sql/);
  t.throws(() => readMigrations(tempMigrations(t, { '0001_a.sql': 'SELECT 1;', '0001_b.sql': 'SELECT 1;' })), /share number 0001/);
});

t.test('two `pnpm migrate` processes at once: one applies, both exit 0, one row per file', async (t) => {
  const url = await createEmptyDatabase(t);
  const run = () =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, ['--conditions=@hatch/source', '--import', 'tsx', 'packages/db/src/migrate-cli.ts'], {
        cwd: root,
        env: { ...process.env, DATABASE_URL: url },
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('close', (code) => resolve({ code, out }));
    });
  const [a, b] = await Promise.all([run(), run()]);
  t.equal(a.code, 0, a.out);
  t.equal(b.code, 0, b.out);
  const files = readMigrations(defaultMigrationsDir());
  const appliedCounts = [a, b].map((r) => Number(/(\d+) applied,/.exec(r.out)?.[1] ?? -1)).sort();
  t.same(appliedCounts, [0, files.length], 'exactly one of them applied the files');
  const recorded = await query(url, (sql) => sql<{ name: string }[]>`SELECT name FROM schema_migrations ORDER BY name`);
  t.same(recorded.map((r) => r.name), files.map((f) => f.name));
});

t.test('pnpm migrate with an unreachable database fails with one clear line', async (t) => {
  const child = spawn(process.execPath, ['--conditions=@hatch/source', '--import', 'tsx', 'packages/db/src/migrate-cli.ts'], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: 'postgres://postgres:pw@127.0.0.1:1/hatch' },
  });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise((r) => child.on('close', r));
  t.equal(code, 1);
  t.match(err, /^migrate: cannot migrate postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/hatch/);
  t.equal(err.trim().split('\n').length, 1, 'one line');
});

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import t from 'tap';
import { createHash } from 'node:crypto';
import { createEmptyDatabase } from '@hatch/testing';
import { defaultMigrationsDir, migrate, MigrationError, readMigrations } from '../src/index.js';
import { executedSql } from '../src/migrate.js';

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
  t.same(
    rows.map((r) => r.v),
    [1, 2],
    'each file ran exactly once',
  );
  const recorded = await query(
    url,
    (sql) => sql<{ name: string; checksum: string }[]>`SELECT name, checksum FROM schema_migrations ORDER BY name`,
  );
  t.equal(recorded.length, 2);
  t.match(recorded[0]?.checksum, /^v2:[0-9a-f]{64}$/);
});

t.test('a failing migration rolls back whole and is not recorded', async (t) => {
  const url = await createEmptyDatabase(t);
  const dir = tempMigrations(t, {
    '0001_ok.sql': 'CREATE TABLE ok (v int);',
    '0002_bad.sql': 'CREATE TABLE half (v int); SELECT nope_no_such_function();',
  });
  await t.rejects(migrate({ url, dir }));
  const tables = await query(
    url,
    (sql) => sql<{ tablename: string }[]>`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`,
  );
  t.same(
    tables.map((r) => r.tablename),
    ['ok', 'schema_migrations'],
    'the failed file left nothing behind',
  );
  const recorded = await query(url, (sql) => sql<{ name: string }[]>`SELECT name FROM schema_migrations`);
  t.same(
    recorded.map((r) => r.name),
    ['0001_ok.sql'],
  );
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

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

t.test(
  'an applied file whose comments and layout changed is accepted; a changed statement, literal or function body is refused',
  async (t) => {
    const url = await createEmptyDatabase(t);
    const body = "CREATE FUNCTION f() RETURNS text LANGUAGE plpgsql AS $$\nBEGIN\n  -- inside the body\n  RETURN 'a -- b';\nEND\n$$;";
    const dir = tempMigrations(t, {
      '0001_a.sql': `-- see the old notes\nCREATE TABLE a (v int, s text DEFAULT 'x -- y'); /* old */\n${body}\n`,
    });
    await migrate({ url, dir });
    const file = path.join(dir, '0001_a.sql');
    fs.writeFileSync(
      file,
      `-- see docs/architecture.md, rule 1\n-- a second line\nCREATE TABLE a (\n  v int,\n  s text DEFAULT 'x -- y'\n); /* new /* nested */ */\n${body}\n`,
    );
    const again = await migrate({ url, dir });
    t.same(again.alreadyApplied, ['0001_a.sql'], 'comments and whitespace between tokens changed: accepted, nothing applied');
    for (const [what, text] of [
      ['a statement', `CREATE TABLE a (v bigint, s text DEFAULT 'x -- y');\n${body}\n`],
      ['a string literal', `CREATE TABLE a (v int, s text DEFAULT 'x --  y');\n${body}\n`],
      [
        'a comment inside a function body',
        `CREATE TABLE a (v int, s text DEFAULT 'x -- y');\n${body.replace('inside the body', 'inside the body, changed')}\n`,
      ],
    ] as const) {
      fs.writeFileSync(file, text);
      await t.rejects(migrate({ url, dir }), /refusing to migrate: .*0001_a\.sql/, `${what} changed: refused`);
    }
  },
);

t.test('executedSql keeps literals, quoted identifiers and dollar-quoted bodies, and drops comments and layout', async (t) => {
  t.equal(
    executedSql("  SELECT  1, -- one\n 'a''--b', E'c\\'--d', \"e--\"\"f\" /* x /* y */ z */ ;\n"),
    "SELECT 1,'a''--b',E'c\\'--d',\"e--\"\"f\";",
  );
  t.equal(executedSql('SELECT $tag$ -- kept\n $$ $tag$, $1, a$b;'), 'SELECT $tag$ -- kept\n $$ $tag$,$1,a$b;');
  t.equal(executedSql("SELECT 1 - /* apart */ -1, E 'x', ( v )"), "SELECT 1- -1,E 'x',(v)", 'a space only where it keeps tokens apart');
});

t.test("checksums recorded by the previous migrator (the file's SHA-256) are still accepted", async (t) => {
  const url = await createEmptyDatabase(t);
  const old = '-- cites the old notes\nCREATE TABLE a (v int);\n';
  const dir = tempMigrations(t, { '0001_a.sql': old });
  await migrate({ url, dir });
  // as the previous migrator recorded it
  await query(url, (sql) => sql`UPDATE schema_migrations SET checksum = ${sha256(old)}`);
  t.same((await migrate({ url, dir })).alreadyApplied, ['0001_a.sql'], 'the unchanged file: accepted');
  const fixed = '-- cites docs/architecture.md\nCREATE TABLE a (v int);\n';
  fs.writeFileSync(path.join(dir, '0001_a.sql'), fixed);
  await t.rejects(migrate({ url, dir }), /0001_a\.sql/, 'comments changed and no legacy entry: refused (the old text is unknown)');
  const legacyChecksums = { '0001_a.sql': [{ sha256: sha256(old), v2: readMigrations(dir)[0]?.checksum ?? '' }] };
  t.same((await migrate({ url, dir, legacyChecksums })).alreadyApplied, ['0001_a.sql'], 'with its legacy entry: accepted');
  fs.writeFileSync(path.join(dir, '0001_a.sql'), '-- cites docs/architecture.md\nCREATE TABLE a (v bigint);\n');
  await t.rejects(migrate({ url, dir, legacyChecksums }), /0001_a\.sql/, 'a changed statement under a legacy checksum: refused');
  const recorded = await query(url, (sql) => sql<{ checksum: string }[]>`SELECT checksum FROM schema_migrations`);
  t.equal(recorded[0]?.checksum, sha256(old), 'the recorded checksum is left as it was (a rolled-back release still accepts it)');
});

t.test(
  "a database the previous release migrated (every file's SHA-256 recorded, before sql/'s comments were corrected) migrates",
  async (t) => {
    const url = await createEmptyDatabase(t);
    await migrate({ url, dir: defaultMigrationsDir() });
    // What the previous release recorded: the SHA-256 of each file as it shipped then; 0001 and 0002
    // have had only comments corrected since (their texts are in git history, commit c661d25).
    const shipped: Record<string, string> = {
      '0001_core_schema.sql': '58dc8c56ab9a4c723e91486986ad3b5656047d13d441327a8d0ba06df1e401c3',
      '0002_change_journal.sql': '0642f456104f47b8033af001e06748ab99e241a9faa0f70737b228b0d8b42b93',
    };
    for (const f of readMigrations(defaultMigrationsDir())) {
      await query(url, (sql) => sql`UPDATE schema_migrations SET checksum = ${shipped[f.name] ?? sha256(f.sql)} WHERE name = ${f.name}`);
    }
    const r = await migrate({ url, dir: defaultMigrationsDir() });
    t.same(r.applied, [], 'nothing applied');
    t.same(
      r.alreadyApplied,
      readMigrations(defaultMigrationsDir()).map((f) => f.name),
      'every file accepted',
    );
  },
);

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
  t.same(
    recorded.map((r) => r.name),
    files.map((f) => f.name),
  );
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

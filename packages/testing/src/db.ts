/**
 * createTestDb(t): a fresh database per test file, cloned from a migrated template (one per
 * test run, made once under an advisory lock), dropped in teardown. Tests never share rows.
 */
import { createHash, randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { createDb, defaultMigrationsDir, migrate, quoteIdent, readMigrations, type Db } from '@hatch/db';

export interface Teardownable {
  teardown(fn: () => unknown): void;
}

export const TEST_DB_PREFIX = 'hatch_t_';
const TEMPLATE_LOCK_KEY = 0x68617463685f7470n; // "hatch_tp"

export function testAdminUrl(): string {
  return process.env.HATCH_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
}

export function urlForDatabase(base: string, name: string): string {
  const u = new URL(base);
  u.pathname = `/${name}`;
  return u.toString();
}

/** The run id the test wrapper sets; stand-alone runs use a hash of the migrations (a reusable cache). */
export function testRunId(): string {
  const fromEnv = process.env.HATCH_TEST_RUN_ID;
  if (fromEnv && /^[a-z0-9]{1,20}$/.test(fromEnv)) return fromEnv;
  const h = createHash('sha256');
  for (const m of readMigrations(defaultMigrationsDir())) h.update(m.name).update(m.checksum);
  return `m${h.digest('hex').slice(0, 12)}`;
}

export function templateName(runId = testRunId()): string {
  return `hatch_tpl_${runId}`;
}

async function withAdmin<T>(fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(testAdminUrl(), { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

let templateReady: Promise<string> | undefined;

/** Creates and migrates the run's template database once (concurrent test processes wait on a lock). */
export function ensureTemplate(): Promise<string> {
  templateReady ??= withAdmin(async (sql) => {
    const name = templateName();
    await sql`SELECT pg_advisory_lock(${TEMPLATE_LOCK_KEY.toString()}::bigint)`;
    try {
      const exists = await sql`SELECT 1 FROM pg_database WHERE datname = ${name}`;
      if (exists.length === 0) {
        const building = `${name}_build`;
        await sql.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(building)} WITH (FORCE)`);
        await migrate({ url: urlForDatabase(testAdminUrl(), building), dir: defaultMigrationsDir() });
        // Renamed only when complete: a crash mid-migration never leaves a half-built template.
        await sql.unsafe(`ALTER DATABASE ${quoteIdent(building)} RENAME TO ${quoteIdent(name)}`);
      }
    } finally {
      await sql`SELECT pg_advisory_unlock(${TEMPLATE_LOCK_KEY.toString()}::bigint)`;
    }
    return name;
  });
  return templateReady;
}

export async function dropTemplate(runId = testRunId()): Promise<void> {
  await withAdmin(async (sql) => {
    await sql.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(templateName(runId))} WITH (FORCE)`);
    await sql.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(`${templateName(runId)}_build`)} WITH (FORCE)`);
  });
}

/** Drops every test database a run left behind (a test process killed before its teardown). */
export async function dropRunDatabases(runId = testRunId()): Promise<string[]> {
  return withAdmin(async (sql) => {
    const rows = await sql<{ datname: string }[]>`SELECT datname FROM pg_database WHERE datname LIKE ${`${TEST_DB_PREFIX}${runId}_%`}`;
    for (const r of rows) await sql.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(r.datname)} WITH (FORCE)`);
    return rows.map((r) => r.datname);
  });
}

export interface TestDb extends Db {
  url: string;
  name: string;
}

/** A fresh, migrated, empty database for this test file; dropped when `t` ends. */
export async function createTestDb(t: Teardownable, opts: { max?: number } = {}): Promise<TestDb> {
  const template = await ensureTemplate();
  const name = `${TEST_DB_PREFIX}${testRunId()}_${randomBytes(5).toString('hex')}`;
  await withAdmin(async (sql) => {
    // Clones serialise on the lock: CREATE DATABASE … TEMPLATE fails if the template is busy.
    await sql`SELECT pg_advisory_lock(${TEMPLATE_LOCK_KEY.toString()}::bigint)`;
    try {
      await sql.unsafe(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(template)}`);
    } finally {
      await sql`SELECT pg_advisory_unlock(${TEMPLATE_LOCK_KEY.toString()}::bigint)`;
    }
  });
  const url = urlForDatabase(testAdminUrl(), name);
  const handle = createDb(url, { max: opts.max ?? 5, applicationName: 'hatch-test' });
  t.teardown(async () => {
    await handle.close(2);
    await withAdmin((sql) => sql.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`));
  });
  return { ...handle, url, name };
}

/** An empty database (not migrated) for migrator tests; dropped when `t` ends. */
export async function createEmptyDatabase(t: Teardownable): Promise<string> {
  const name = `${TEST_DB_PREFIX}${testRunId()}_${randomBytes(5).toString('hex')}`;
  t.teardown(() => withAdmin((sql) => sql.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`)));
  return urlForDatabase(testAdminUrl(), name);
}

/**
 * The migrator: applies sql/NNNN_name.sql in order, each once, each in its own transaction,
 * under a session advisory lock so any number of replicas may run it at once (the others wait,
 * then find nothing to do). Each applied file is recorded with its SHA-256; an applied file that
 * changed afterwards is refused (forward-only: write a new migration instead).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { DEFAULT_QUERY_TIMEOUT_MS, serverTimeouts } from './client.js';

/** pg_advisory_lock key: "hatch_mig" as a 64-bit number, shared by every migrator. */
const MIGRATION_LOCK_KEY = 0x68617463685f6d69n;

export interface MigrationFile {
  name: string;
  checksum: string;
  sql: string;
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: string[];
  createdDatabase: boolean;
}

export interface MigrateOptions {
  url: string;
  dir: string;
  log?: (msg: string) => void;
}

export class MigrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MigrationError';
  }
}

const FILE_PATTERN = /^\d{4}_[a-z0-9_]+\.sql$/;

export function readMigrations(dir: string): MigrationFile[] {
  const names = fs.readdirSync(dir).filter((f) => f.endsWith('.sql')).sort();
  const bad = names.filter((n) => !FILE_PATTERN.test(n));
  if (bad.length) throw new MigrationError(`migration file names must look like 0001_name.sql: ${bad.join(', ')}`);
  const seen = new Set<string>();
  return names.map((name) => {
    const num = name.slice(0, 4);
    if (seen.has(num)) throw new MigrationError(`two migrations share number ${num}`);
    seen.add(num);
    const sql = fs.readFileSync(path.join(dir, name), 'utf8');
    return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
  });
}

/** CREATE DATABASE for the url's database when it does not exist (concurrent-safe). */
export async function ensureDatabase(url: string): Promise<boolean> {
  const target = new URL(url);
  const dbName = decodeURIComponent(target.pathname.replace(/^\//, '')) || 'postgres';
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const sql = postgres(admin.toString(), { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    const rows = await sql`SELECT 1 FROM pg_database WHERE datname = ${dbName}`;
    if (rows.length > 0) return false;
    try {
      await sql.unsafe(`CREATE DATABASE ${quoteIdent(dbName)}`);
      return true;
    } catch (err) {
      // 42P04 duplicate_database / 23505: another migrator created it between our check and create.
      const code = (err as { code?: string }).code;
      if (code === '42P04' || code === '23505') return false;
      throw err;
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export async function migrate(opts: MigrateOptions): Promise<MigrateResult> {
  const log = opts.log ?? (() => {});
  const files = readMigrations(opts.dir);
  const createdDatabase = await ensureDatabase(opts.url);
  if (createdDatabase) log(`created database ${new URL(opts.url).pathname.slice(1)}`);
  // One connection: the session advisory lock and every transaction share it. The
  // idle-in-transaction bound of every Hatch connection holds here too (serverTimeouts): the
  // migrator never pauses inside a transaction, so one that hung there is gone, and its locks
  // must not stop the API.
  const { idle_in_transaction_session_timeout } = serverTimeouts(DEFAULT_QUERY_TIMEOUT_MS);
  const sql = postgres(opts.url, { max: 1, onnotice: () => {}, connect_timeout: 10, connection: { idle_in_transaction_session_timeout } });
  const applied: string[] = [];
  const alreadyApplied: string[] = [];
  try {
    // No statement bound, whatever a role or database default says: a migration runs once, in
    // its own transaction, under an operator's eyes, and a CREATE INDEX or a backfill on a large
    // table may legitimately take minutes; cut halfway it would only roll back and fail again.
    // (A SET, not a startup parameter: postgres.js leaves out falsy ones such as 0.)
    await sql`SET statement_timeout = 0`;
    await sql`SELECT pg_advisory_lock(${MIGRATION_LOCK_KEY.toString()}::bigint)`;
    try {
      await sql`
        CREATE TABLE IF NOT EXISTS schema_migrations (
          name       text PRIMARY KEY,
          checksum   text NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now()
        )`;
      const rows = await sql<{ name: string; checksum: string }[]>`SELECT name, checksum FROM schema_migrations`;
      const done = new Map(rows.map((r) => [r.name, r.checksum]));
      const changed = files.filter((f) => done.has(f.name) && done.get(f.name) !== f.checksum).map((f) => f.name);
      if (changed.length) {
        throw new MigrationError(
          `refusing to migrate: applied migration(s) changed since they ran: ${changed.join(', ')} (migrations are forward-only: restore the file and add a new one)`,
        );
      }
      for (const file of files) {
        if (done.has(file.name)) {
          alreadyApplied.push(file.name);
          continue;
        }
        await sql.begin(async (tx) => {
          await tx.unsafe(file.sql);
          await tx`INSERT INTO schema_migrations (name, checksum) VALUES (${file.name}, ${file.checksum})`;
        });
        applied.push(file.name);
        log(`applied ${file.name}`);
      }
    } finally {
      await sql`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY.toString()}::bigint)`.catch(() => {});
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
  return { applied, alreadyApplied, createdDatabase };
}

/** The repository's sql/ directory (packages/db/src → ../../../sql; dist → same depth). */
export function defaultMigrationsDir(): string {
  return path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../sql');
}

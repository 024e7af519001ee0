/**
 * The migrator: applies sql/NNNN_name.sql in order, each once, each in its own transaction,
 * under a session advisory lock so any number of replicas may run it at once (the others wait,
 * then find nothing to do). Each applied file is recorded with a checksum of what it executes: an
 * applied file whose statements changed afterwards is refused (forward-only: write a new migration
 * instead), while its comments and layout may still be corrected (see migrationChecksum).
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
  /** migrationChecksum(sql): what schema_migrations records for it */
  checksum: string;
  sql: string;
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: string[];
  createdDatabase: boolean;
}

/** Per file name: whole-file SHA-256s an earlier migrator recorded, each with the v2 checksum of that text. */
export type LegacyChecksums = Record<string, Array<{ sha256: string; v2: string }>>;

export interface MigrateOptions {
  url: string;
  dir: string;
  log?: (msg: string) => void;
  /** Tests only: instead of the built-in LEGACY_CHECKSUMS. */
  legacyChecksums?: LegacyChecksums;
}

export class MigrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MigrationError';
  }
}

const FILE_PATTERN = /^\d{4}_[a-z0-9_]+\.sql$/;

export function readMigrations(dir: string): MigrationFile[] {
  const names = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort();
  const bad = names.filter((n) => !FILE_PATTERN.test(n));
  if (bad.length) throw new MigrationError(`migration file names must look like 0001_name.sql: ${bad.join(', ')}`);
  const seen = new Set<string>();
  return names.map((name) => {
    const num = name.slice(0, 4);
    if (seen.has(num)) throw new MigrationError(`two migrations share number ${num}`);
    seen.add(num);
    const sql = fs.readFileSync(path.join(dir, name), 'utf8');
    return { name, sql, checksum: migrationChecksum(sql) };
  });
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * The SQL a migration executes, without what PostgreSQL ignores: comments (`--` to the end of
 * the line, nested block comments) and the layout between tokens. Whitespace and comments
 * between tokens become one space where it keeps two tokens apart (two words, two operator
 * characters, a word and the quote after it: `E 'x'` is not `E'x'`) and nothing elsewhere, so
 * `(v int)` and `(\n  v int\n)` are the same. String literals ('…', E'…' with backslash escapes),
 * quoted identifiers ("…") and dollar-quoted bodies ($tag$…$tag$) are kept byte for byte: a
 * comment inside a function body is part of the function PostgreSQL stores.
 */
const WORD = /[A-Za-z0-9_$\u0080-\uffff]/;
const OPERATOR = /[-+*/<>=~!@#%^&|`?]/;
function keepsApart(before: string, after: string): boolean {
  if (WORD.test(before)) return WORD.test(after) || after === "'" || after === '"';
  return OPERATOR.test(before) && OPERATOR.test(after);
}

export function executedSql(sql: string): string {
  let out = '';
  let space = false; // whitespace or a comment since the last token
  const emit = (text: string) => {
    if (space && out !== '' && keepsApart(out[out.length - 1] as string, text[0] as string)) out += ' ';
    space = false;
    out += text;
  };
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i] as string;
    const next = sql[i + 1];
    if (/\s/.test(c)) {
      space = true;
      i++;
    } else if (c === '-' && next === '-') {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? n : end;
      space = true;
    } else if (c === '/' && next === '*') {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql.startsWith('/*', i)) {
          depth++;
          i += 2;
        } else if (sql.startsWith('*/', i)) {
          depth--;
          i += 2;
        } else i++;
      }
      space = true;
    } else if (c === "'" || c === '"') {
      // E'…' (the E was emitted as the previous character, with no space in between) escapes with \
      const backslashes = c === "'" && !space && /(^|[^A-Za-z0-9_$])[eE]$/.test(out);
      let j = i + 1;
      while (j < n) {
        if (backslashes && sql[j] === '\\') j += 2;
        else if (sql[j] === c) {
          if (sql[j + 1] === c) j += 2;
          else break;
        } else j++;
      }
      emit(sql.slice(i, j + 1));
      i = j + 1;
    } else if (c === '$') {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 66));
      // a tag directly after an identifier character is part of that identifier (e.g. a$b$)
      if (tag && (space || !/[A-Za-z0-9_$]$/.test(out))) {
        const close = sql.indexOf(tag[0], i + tag[0].length);
        const end = close === -1 ? n : close + tag[0].length;
        emit(sql.slice(i, end));
        i = end;
      } else {
        emit(c);
        i++;
      }
    } else {
      emit(c);
      i++;
    }
  }
  return out;
}

/** What schema_migrations records for a file: "v2:" and the SHA-256 of executedSql(sql). */
export function migrationChecksum(sql: string): string {
  return `v2:${sha256(executedSql(sql))}`;
}

/**
 * Checksums recorded by migrators before "v2:" (the SHA-256 of the whole file, comments
 * included) for files whose comments were corrected since: each is accepted while the file still
 * executes what it did then (its v2 checksum, taken from the text as it was recorded). A
 * recorded plain SHA-256 that is in no entry is accepted only for the unchanged file.
 */
const LEGACY_CHECKSUMS: LegacyChecksums = {
  // comments that cited notes outside the repository now cite docs/ (issue 15)
  '0001_core_schema.sql': [
    {
      sha256: '58dc8c56ab9a4c723e91486986ad3b5656047d13d441327a8d0ba06df1e401c3',
      v2: 'v2:da9a227e33dda71dcc65024bba6fc8a5e8d9c4e7582378e378b117f170122c29',
    },
  ],
  '0002_change_journal.sql': [
    {
      sha256: '0642f456104f47b8033af001e06748ab99e241a9faa0f70737b228b0d8b42b93',
      v2: 'v2:3ff0c6bc27399628be58e6cffc12e22006de84b1cf5327e372305154c8716e31',
    },
  ],
};

/** Whether the checksum recorded when `file` was applied still matches what the file executes. */
export function checksumMatches(file: MigrationFile, recorded: string, legacy: LegacyChecksums = LEGACY_CHECKSUMS): boolean {
  if (recorded.startsWith('v2:')) return recorded === file.checksum;
  // a checksum of an earlier migrator: the SHA-256 of the whole file
  if (recorded === sha256(file.sql)) return true;
  return (legacy[file.name] ?? []).some((l) => l.sha256 === recorded && l.v2 === file.checksum);
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
      // Recorded checksums stay as written (an earlier migrator's too): rewriting them would make
      // a rolled-back release refuse the database.
      const changed = files
        .filter((f) => done.has(f.name) && !checksumMatches(f, done.get(f.name) as string, opts.legacyChecksums))
        .map((f) => f.name);
      if (changed.length) {
        throw new MigrationError(
          `refusing to migrate: applied migration(s) changed since they ran: ${changed.join(', ')} (migrations are forward-only: restore their statements and add a new migration; only comments and layout may change)`,
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

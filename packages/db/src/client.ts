/**
 * createDb(url): Kysely over postgres.js with a bounded pool. The one way services reach
 * PostgreSQL; `close()` drains the pool within a bound (graceful shutdown).
 */
import postgres from 'postgres';
import { Kysely, type Transaction } from 'kysely';
import { PostgresJSDialect } from 'kysely-postgres-js';
import type { DB } from './generated.js';

export type Database = Kysely<DB>;
/** A query function takes either the pool or a transaction; the caller opens transactions. */
export type Executor = Kysely<DB> | Transaction<DB>;

export interface CreateDbOptions {
  /** pool size (bounded, design rule 4) */
  max?: number;
  /** seconds an idle connection is kept */
  idleTimeoutSeconds?: number;
  /** seconds to wait for a connection to open */
  connectTimeoutSeconds?: number;
  applicationName?: string;
}

export interface Db {
  db: Database;
  /** the underlying postgres.js client, for LISTEN and raw health checks */
  sql: postgres.Sql;
  close(timeoutSeconds?: number): Promise<void>;
}

export function createDb(url: string, opts: CreateDbOptions = {}): Db {
  const sql = postgres(url, {
    max: opts.max ?? 10,
    idle_timeout: opts.idleTimeoutSeconds ?? 30,
    connect_timeout: opts.connectTimeoutSeconds ?? 5,
    connection: { application_name: opts.applicationName ?? 'hatch' },
    onnotice: () => {},
    // int8 (bigint ids, counts) stays a string: JS numbers lose precision past 2^53.
  });
  const db = new Kysely<DB>({ dialect: new PostgresJSDialect({ postgres: sql }) });
  let closed: Promise<void> | undefined;
  return {
    db,
    sql,
    close(timeoutSeconds = 5) {
      closed ??= sql.end({ timeout: timeoutSeconds });
      return closed;
    },
  };
}

/** Is this error PostgreSQL (or the pool) being unreachable, rather than a bad query? */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; errno?: string } | undefined;
  if (!e) return false;
  const code = e.code ?? e.errno ?? '';
  return (
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED'].includes(code) ||
    // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, 08xxx connection exceptions
    /^(57P0[1-3]|08\d{3}|53300)$/.test(code)
  );
}

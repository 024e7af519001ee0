/**
 * createDb(url): Kysely over postgres.js with a bounded pool. The one way services reach
 * PostgreSQL; `close()` drains the pool within a bound (graceful shutdown).
 */
import postgres from 'postgres';
import { CompiledQuery, Kysely, type DatabaseConnection, type Driver, type Transaction } from 'kysely';
import { PostgresJSDialect, PostgresJSDriver } from 'kysely-postgres-js';
import type { DB } from './generated.js';

/**
 * kysely 0.28.19's PostgresDriver.rollbackTransaction calls a private "mark for discard" method
 * when ROLLBACK fails, which kysely-postgres-js 3.0.0's connection does not have: a transaction
 * cut off by a dropped connection (PostgreSQL restarting) then surfaced as a TypeError (a 500)
 * instead of the connection error (a 503). postgres.js replaces a dead connection by itself, so
 * a failed ROLLBACK only has to report why it failed.
 */
class PostgresJSDriverWithRollback extends PostgresJSDriver {
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('rollback'));
  }
}

class Dialect extends PostgresJSDialect {
  readonly #sql: postgres.Sql;
  constructor(sql: postgres.Sql) {
    super({ postgres: sql });
    this.#sql = sql;
  }
  override createDriver(): Driver {
    return new PostgresJSDriverWithRollback({ postgres: this.#sql });
  }
}

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
    // Reconnect quickly after PostgreSQL restarts: postgres.js's default backoff grows to 20 s
    // per connection (3^n / 100 s), which kept a recovered database unused for that long.
    backoff: (retries: number) => Math.min(0.1 * 2 ** retries, 2),
    onnotice: () => {},
    // int8 (bigint ids, counts) stays a string: JS numbers lose precision past 2^53.
  });
  const db = new Kysely<DB>({ dialect: new Dialect(sql) });
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

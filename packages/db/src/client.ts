/**
 * createDb(url): Kysely over postgres.js with a bounded pool. The one way services reach
 * PostgreSQL; `close()` drains the pool within a bound (graceful shutdown).
 */
import postgres from 'postgres';
import { CompiledQuery, Kysely, type DatabaseConnection, type Driver, type QueryResult, type Transaction } from 'kysely';
import { PostgresJSDialect, PostgresJSDriver } from 'kysely-postgres-js';
import { withTimeout } from '@hatch/async';
import { backoffDelay, type Backoff } from '@hatch/contracts';
import type { DB } from './generated.js';

/**
 * Every query as a PREPARED statement. kysely-postgres-js 3.0.0 runs each query through
 * postgres.js `unsafe()`, which does not prepare: for every query with parameters the driver
 * first sends Parse + Describe and waits for the parameter types, then Bind + Execute (two round
 * trips, and the server parses and plans each time). Prepared, a query shape is described once
 * per connection and later runs are one round trip on a cached plan (bench P1: half the time
 * the database spent on a send was waiting for the second half of the protocol). postgres.js
 * re-prepares by itself when a cached plan is invalidated (a migration). The statements a
 * connection keeps are bounded by the query shapes (IN lists are bounded by page and batch
 * sizes) and dropped with the connection. Not for a transaction-mode connection pooler in
 * front of PostgreSQL (PgBouncer < 1.21 loses prepared statements between transactions).
 */
class PreparedConnection implements DatabaseConnection {
  readonly #conn: postgres.ReservedSql;
  readonly #queryTimeoutMs: number;
  constructor(conn: postgres.ReservedSql, queryTimeoutMs: number) {
    this.#conn = conn;
    this.#queryTimeoutMs = queryTimeoutMs;
  }
  async executeQuery<R>(q: CompiledQuery): Promise<QueryResult<R>> {
    const query = this.#conn.unsafe(q.sql, [...q.parameters] as postgres.ParameterOrJSON<never>[], { prepare: true });
    const result = await withTimeout(query, this.#queryTimeoutMs, `no answer to a query within ${this.#queryTimeoutMs} ms`, QUERY_TIMEOUT);
    const { command, count } = result;
    return {
      numAffectedRows:
        command === 'INSERT' || command === 'UPDATE' || command === 'DELETE' || command === 'MERGE' ? BigInt(count) : undefined,
      rows: Array.from(result.values()) as R[],
    };
  }
  // eslint-disable-next-line require-yield -- Kysely's driver interface needs the method; it only refuses
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streaming queries are not supported by @hatch/db');
  }
  release(): void {
    this.#conn.release();
  }
}

/**
 * Also: kysely 0.28.19's PostgresDriver.rollbackTransaction calls a private "mark for discard"
 * method when ROLLBACK fails, which kysely-postgres-js 3.0.0's connection does not have: a
 * transaction cut off by a dropped connection (PostgreSQL restarting) then surfaced as a
 * TypeError (a 500) instead of the connection error (a 503). postgres.js replaces a dead
 * connection by itself, so a failed ROLLBACK only has to report why it failed.
 */
class HatchDriver extends PostgresJSDriver {
  readonly #sql: postgres.Sql;
  readonly #bounds: { acquireTimeoutMs: number; queryTimeoutMs: number };
  constructor(sql: postgres.Sql, bounds: { acquireTimeoutMs: number; queryTimeoutMs: number }) {
    super({ postgres: sql });
    this.#sql = sql;
    this.#bounds = bounds;
  }
  /**
   * A connection from the pool, within a bound: waiting for one (every connection busy, or the
   * pool reconnecting to a restarted PostgreSQL) fails with ACQUIRE_TIMEOUT, a connection error
   * (503, or a job retried), instead of a request, a job or a shutdown waiting without end. A
   * connection handed over after the caller gave up goes straight back to the pool.
   *
   * Every query on it is bounded too (QUERY_TIMEOUT). postgres.js 3.4.9 can leave a query on a
   * reserved connection unsettled for good when PostgreSQL is stopped at the wrong moment (a
   * BEGIN or ROLLBACK on a connection that was just cut: seen in the restart test of
   * test/pool.test.ts, a few operations in a thousand); bounded, it fails like a lost connection.
   */
  override async acquireConnection(): ReturnType<PostgresJSDriver['acquireConnection']> {
    const reserving = this.#sql.reserve();
    const ms = this.#bounds.acquireTimeoutMs;
    const conn = await withTimeout(reserving, ms, `no database connection within ${ms} ms`, ACQUIRE_TIMEOUT).catch((err: unknown) => {
      reserving.then(
        (c) => c.release(),
        () => undefined,
      );
      throw err;
    });
    // (the base class types its own connection class; Kysely needs only a DatabaseConnection)
    return new PreparedConnection(conn, this.#bounds.queryTimeoutMs) as unknown as Awaited<
      ReturnType<PostgresJSDriver['acquireConnection']>
    >;
  }
  override async releaseConnection(connection: DatabaseConnection): Promise<void> {
    (connection as PreparedConnection).release();
  }
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('rollback'));
  }
}

/** The error code of a connection not handed over within the pool's acquire bound. */
export const ACQUIRE_TIMEOUT = 'ACQUIRE_TIMEOUT';
/** The error code of a query not answered within its bound. */
export const QUERY_TIMEOUT = 'QUERY_TIMEOUT';

export type Database = Kysely<DB>;
/** A query function takes either the pool or a transaction; the caller opens transactions. */
export type Executor = Kysely<DB> | Transaction<DB>;

export interface CreateDbOptions {
  /** pool size (bounded, docs/architecture.md, rule 4) */
  max?: number;
  /** seconds an idle connection is kept */
  idleTimeoutSeconds?: number;
  /** seconds to wait for a connection to open */
  connectTimeoutSeconds?: number;
  /** milliseconds a query waits for a pooled connection before failing with ACQUIRE_TIMEOUT */
  acquireTimeoutMs?: number;
  /** milliseconds a query may take before failing with QUERY_TIMEOUT (a connection error) */
  queryTimeoutMs?: number;
  /** PostgreSQL's own bound on a statement (default: just under queryTimeoutMs, serverTimeouts) */
  statementTimeoutMs?: number;
  /** PostgreSQL ends a session left idle inside a transaction this long (default: queryTimeoutMs) */
  idleInTransactionTimeoutMs?: number;
  applicationName?: string;
}

/**
 * The server-side bounds every Hatch connection starts with (startup parameters, so they hold
 * for every statement and transaction on the connection, and a pool never forgets them):
 *
 * - `statement_timeout` sits just under the client's QUERY_TIMEOUT (1 s under it; 10 % under a
 *   bound below 10 s), so the server's bound fires first: PostgreSQL cancels the statement
 *   (57014, a connection error: 503 / retry) and the connection stays usable. Above the client's
 *   bound (or unset), a query the client stopped waiting for would keep running, holding its
 *   backend and its locks, for as long as it liked.
 * - `idle_in_transaction_session_timeout` is twice the client's query bound, at least 60 s: no
 *   legitimate pause inside a Hatch transaction comes near it (queries are bounded by the query
 *   bound, a NATS publish inside the outbox sweep by 5 s), so a session idle in a transaction
 *   that long belongs to a client that hung or vanished; PostgreSQL ends it (25P03) and
 *   releases its row locks. Not equal to the query bound: with 3 s bounds, sessions ended while
 *   PostgreSQL restarted under load left postgres.js with an unhandled `write CONNECTION_CLOSED`
 *   (packages/db/test/pool.test.ts's restart test, 2 runs of 2), which ends a Node process.
 *
 * Migrations run without a statement bound (migrate.ts: a CREATE INDEX may legitimately take
 * minutes) but with the idle-in-transaction one.
 */
export function serverTimeouts(
  queryTimeoutMs: number,
  o: { statementTimeoutMs?: number; idleInTransactionTimeoutMs?: number } = {},
): { statement_timeout: number; idle_in_transaction_session_timeout: number } {
  return {
    statement_timeout: o.statementTimeoutMs ?? Math.max(1, queryTimeoutMs - 1000, Math.floor(queryTimeoutMs * 0.9)),
    idle_in_transaction_session_timeout: o.idleInTransactionTimeoutMs ?? Math.max(IDLE_IN_TRANSACTION_FLOOR_MS, 2 * queryTimeoutMs),
  };
}

/** the least idle-in-transaction bound (serverTimeouts) */
export const IDLE_IN_TRANSACTION_FLOOR_MS = 60_000;

/** The client-side bound on a query (QUERY_TIMEOUT) unless createDb is told otherwise. */
export const DEFAULT_QUERY_TIMEOUT_MS = 30_000;

export interface Db {
  db: Database;
  /** the underlying postgres.js client, for LISTEN and raw health checks */
  sql: postgres.Sql;
  close(timeoutSeconds?: number): Promise<void>;
}

/** postgres.js's wait between reconnect attempts of one connection: 0.1 s doubling to 2 s. */
const RECONNECT_BACKOFF: Backoff = { baseMs: 100, maxMs: 2000 };

export function createDb(url: string, opts: CreateDbOptions = {}): Db {
  const queryTimeoutMs = opts.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
  const sql = postgres(url, {
    max: opts.max ?? 10,
    idle_timeout: opts.idleTimeoutSeconds ?? 30,
    connect_timeout: opts.connectTimeoutSeconds ?? 5,
    connection: { application_name: opts.applicationName ?? 'hatch', ...serverTimeouts(queryTimeoutMs, opts) },
    // Reconnect quickly after PostgreSQL restarts: postgres.js's default backoff grows to 20 s
    // per connection (3^n / 100 s), which kept a recovered database unused for that long.
    // postgres.js takes seconds.
    backoff: (retries: number) => backoffDelay(RECONNECT_BACKOFF, retries) / 1000,
    onnotice: () => {},
    // int8 (bigint ids, counts) stays a string: JS numbers lose precision past 2^53.
  });
  const dialect = new PostgresJSDialect({ postgres: sql });
  const bounds = { acquireTimeoutMs: opts.acquireTimeoutMs ?? 10_000, queryTimeoutMs };
  dialect.createDriver = (): Driver => new HatchDriver(sql, bounds);
  const db = new Kysely<DB>({ dialect });
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
    [
      'ECONNREFUSED',
      'ECONNRESET',
      'ETIMEDOUT',
      'EPIPE',
      'ENOTFOUND',
      'EAI_AGAIN',
      'CONNECT_TIMEOUT',
      'CONNECTION_CLOSED',
      'CONNECTION_ENDED',
      'CONNECTION_DESTROYED',
      ACQUIRE_TIMEOUT,
      QUERY_TIMEOUT,
    ].includes(code) ||
    // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, 08xxx connection
    // exceptions; 57014 query_canceled (statement_timeout: the server's side of QUERY_TIMEOUT) and
    // 25P03 idle_in_transaction_session_timeout (serverTimeouts)
    /^(57P0[1-3]|57014|25P03|08\d{3}|53300)$/.test(code)
  );
}

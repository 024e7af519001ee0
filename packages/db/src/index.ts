export {
  ACQUIRE_TIMEOUT,
  QUERY_TIMEOUT,
  DEFAULT_QUERY_TIMEOUT_MS,
  createDb,
  serverTimeouts,
  isConnectionError,
  type Database,
  type Db,
  type Executor,
  type CreateDbOptions,
} from './client.js';
export {
  migrate,
  readMigrations,
  ensureDatabase,
  defaultMigrationsDir,
  quoteIdent,
  MigrationError,
  type MigrateResult,
} from './migrate.js';
// jsonb columns take JS values as they are (postgres.js serialises them by the column type);
// a JSON.stringify'd string would be stored as a JSON string.
export type { DB, Json } from './generated.js';
export * from './queries/conversations.js';
export * from './queries/messages.js';
export * from './queries/emails.js';
export * from './queries/outbox.js';
export * from './queries/status-events.js';
export * from './queries/opt-outs.js';
export * from './queries/idempotency-keys.js';
export * from './queries/message-status.js';
export * from './queries/send-claims.js';
export * from './queries/email-status.js';
export * from './queries/journal.js';
export * from './queries/accept-message.js';
export * from './queries/sms-quota.js';
export * from './queries/auth-failures.js';
export * from './queries/accounts.js';
export * from './queries/audit-events.js';
export { createGroupCommit, type GroupCommit, type GroupCommitOptions, type GroupCommitWriter } from './group-commit.js';
export {
  applyStatusChanges,
  type StatusChange,
  type StatusChangeResult,
  type StatusReport,
  type StatusWrites,
} from './queries/status-change.js';

/**
 * Team accounts (issue 18, sql/0005_accounts.sql): users, sessions, personal API tokens and
 * one-time invite / reset links. Secrets never reach this module: callers pass SHA-256 hashes.
 * Times that decide expiry come from the caller (`now`), so the gateway's clock can be injected.
 */
import type { Insertable, Selectable } from 'kysely';
import { sql } from 'kysely';
import type { Executor } from '../client.js';
import type { ApiTokens, Invites, Sessions, Users } from '../generated.js';
import type { Keyset } from './messages.js';

export type UserRow = Selectable<Users>;
export type NewUser = Insertable<Users>;
export type SessionRow = Selectable<Sessions>;
export type NewSession = Insertable<Sessions>;
export type ApiTokenRow = Selectable<ApiTokens>;
export type NewApiToken = Insertable<ApiTokens>;
export type InviteRow = Selectable<Invites>;
export type NewInvite = Insertable<Invites>;

/** The owner a credential acts as, with what decides whether it still may. */
export interface CredentialOwner {
  user_id: string | null;
  user_name: string | null;
  user_email: string | null;
  user_role: string | null;
  user_disabled_at: Date | null;
}

// ---- users -------------------------------------------------------------------------------

export async function insertUser(ex: Executor, u: NewUser): Promise<UserRow> {
  return ex.insertInto('users').values(u).returningAll().executeTakeFirstOrThrow();
}

export async function findUser(ex: Executor, id: string): Promise<UserRow | undefined> {
  return ex.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * The admins, oldest first, after taking a transaction-scoped advisory lock that serialises
 * whoever creates the first admin (./setup.sh run twice at once makes one). Call inside a transaction.
 */
export async function lockAdmins(ex: Executor): Promise<Array<Pick<UserRow, 'id' | 'email' | 'password_hash'>>> {
  await sql`SELECT pg_advisory_xact_lock(hashtext('hatch first admin'))`.execute(ex);
  return ex.selectFrom('users').select(['id', 'email', 'password_hash']).where('role', '=', 'admin').orderBy('created_at').execute();
}

/** Names of the given users, by id (who sent a page of messages: one query, not one per row). */
export async function findUserNames(ex: Executor, ids: readonly string[]): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map();
  const rows = await ex
    .selectFrom('users')
    .select(['id', 'name'])
    .where('id', 'in', [...new Set(ids)])
    .execute();
  return new Map(rows.map((r) => [r.id, r.name]));
}

/** Case-insensitive, as the unique index (users_email_unique) is. */
export async function findUserByEmail(ex: Executor, email: string): Promise<UserRow | undefined> {
  return ex
    .selectFrom('users')
    .selectAll()
    .where(sql<string>`lower(email)`, '=', email.toLowerCase())
    .executeTakeFirst();
}

/** Users newest first, strictly before the keyset (GET /api/users). */
export async function listUsers(ex: Executor, opts: { limit: number; before?: Keyset }): Promise<UserRow[]> {
  let q = ex.selectFrom('users').selectAll();
  if (opts.before) {
    const b = opts.before;
    q = q.where((eb) => eb.or([eb('created_at', '<', b.at), eb.and([eb('created_at', '=', b.at), eb('id', '<', b.id)])]));
  }
  return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(opts.limit).execute();
}

export async function updateUser(
  ex: Executor,
  id: string,
  set: { role?: string; disabled_at?: Date | null; name?: string; password_hash?: string; email?: string },
): Promise<UserRow | undefined> {
  if (Object.keys(set).length === 0) return findUser(ex, id);
  return ex.updateTable('users').set(set).where('id', '=', id).returningAll().executeTakeFirst();
}

/**
 * Replaces a user's password hash only while it is still `expected` (the one just verified): a
 * rehash at sign-in never overwrites a password changed meanwhile. Whether it replaced it.
 */
export async function replacePasswordHash(ex: Executor, id: string, expected: string, next: string): Promise<boolean> {
  const r = await ex
    .updateTable('users')
    .set({ password_hash: next })
    .where('id', '=', id)
    .where('password_hash', '=', expected)
    .executeTakeFirst();
  return r.numUpdatedRows > 0n;
}

// ---- sessions ----------------------------------------------------------------------------

export async function insertSession(ex: Executor, s: NewSession): Promise<SessionRow> {
  return ex.insertInto('sessions').values(s).returningAll().executeTakeFirstOrThrow();
}

/** A session by the hash of its cookie id, with its owner (null owner: the bootstrap token). */
export async function findSessionByHash(ex: Executor, idHash: Buffer): Promise<(SessionRow & CredentialOwner) | undefined> {
  return ex
    .selectFrom('sessions as s')
    .leftJoin('users as u', 'u.id', 's.user_id')
    .selectAll('s')
    .select(['u.name as user_name', 'u.email as user_email', 'u.role as user_role', 'u.disabled_at as user_disabled_at'])
    .where('s.id_hash', '=', idHash)
    .executeTakeFirst();
}

/**
 * Records that a session was used, at most once per `minGapMs` (one conditional UPDATE: a
 * session used by many requests at once writes once, and most requests write nothing).
 */
export async function touchSession(ex: Executor, idHash: Buffer, now: Date, minGapMs: number): Promise<boolean> {
  const r = await ex
    .updateTable('sessions')
    .set({ last_seen_at: now })
    .where('id_hash', '=', idHash)
    .where('last_seen_at', '<', new Date(now.getTime() - minGapMs))
    .executeTakeFirst();
  return r.numUpdatedRows > 0n;
}

/** Sessions of one user (null: the bootstrap token's), newest first. */
export async function listSessions(ex: Executor, userId: string | null): Promise<SessionRow[]> {
  const q = ex.selectFrom('sessions').selectAll();
  return (userId === null ? q.where('user_id', 'is', null) : q.where('user_id', '=', userId))
    .orderBy('created_at', 'desc')
    .limit(1000)
    .execute();
}

export async function deleteSessionByHash(ex: Executor, idHash: Buffer): Promise<SessionRow | undefined> {
  return ex.deleteFrom('sessions').where('id_hash', '=', idHash).returningAll().executeTakeFirst();
}

/** Deletes one session by its public id; with `userId`, only if it is that user's (null: the bootstrap token's). */
export async function deleteSession(ex: Executor, id: string, owner?: { userId: string | null }): Promise<SessionRow | undefined> {
  let q = ex.deleteFrom('sessions').where('id', '=', id);
  if (owner) q = owner.userId === null ? q.where('user_id', 'is', null) : q.where('user_id', '=', owner.userId);
  return q.returningAll().executeTakeFirst();
}

/** Every session of a user (disabled; password reset). */
export async function deleteUserSessions(ex: Executor, userId: string): Promise<SessionRow[]> {
  return ex.deleteFrom('sessions').where('user_id', '=', userId).returningAll().execute();
}

/** Sessions past their absolute expiry or idle for `idleMs`, in bounded batches. */
export async function purgeExpiredSessions(ex: Executor, now: Date, idleMs: number, batch = 1000): Promise<number> {
  const r = await sql`
    DELETE FROM sessions WHERE id_hash IN (
      SELECT id_hash FROM sessions WHERE expires_at <= ${now} OR last_seen_at <= ${new Date(now.getTime() - idleMs)} LIMIT ${batch})`.execute(
    ex,
  );
  return Number(r.numAffectedRows ?? 0n);
}

/** What decides whether a session or token still works (CredentialState). */
export interface CredentialState {
  kind: 'session' | 'token';
  id: string;
  /** absolute expiry; null: a token without one */
  expires_at: Date | null;
  /** sessions: idle expiry counts from it; tokens: null */
  last_seen_at: Date | null;
  revoked_at: Date | null;
  user_disabled_at: Date | null;
}

/**
 * The state of the given sessions (by public id) and tokens, in one statement: the gateway's
 * check of the credentials behind its open event streams (realtime/stream-credentials.ts). An id
 * missing from the answer has no row (a session ended or purged). The caller bounds the lists.
 */
export async function findCredentialStates(
  ex: Executor,
  ids: { sessions: readonly string[]; tokens: readonly string[] },
): Promise<CredentialState[]> {
  if (ids.sessions.length === 0 && ids.tokens.length === 0) return [];
  const r = await sql<CredentialState>`
    SELECT 'session' AS kind, s.id::text AS id, s.expires_at, s.last_seen_at, NULL::timestamptz AS revoked_at, u.disabled_at AS user_disabled_at
      FROM sessions s LEFT JOIN users u ON u.id = s.user_id
     WHERE s.id = ANY(${[...ids.sessions]}::uuid[])
    UNION ALL
    SELECT 'token', t.id::text, t.expires_at, NULL::timestamptz, t.revoked_at, u.disabled_at
      FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id
     WHERE t.id = ANY(${[...ids.tokens]}::uuid[])`.execute(ex);
  return r.rows;
}

// ---- personal API tokens -----------------------------------------------------------------

export async function insertApiToken(ex: Executor, t: NewApiToken): Promise<ApiTokenRow> {
  return ex.insertInto('api_tokens').values(t).returningAll().executeTakeFirstOrThrow();
}

export async function findApiTokenByHash(ex: Executor, tokenHash: Buffer): Promise<(ApiTokenRow & CredentialOwner) | undefined> {
  return ex
    .selectFrom('api_tokens as t')
    .leftJoin('users as u', 'u.id', 't.user_id')
    .selectAll('t')
    .select(['u.name as user_name', 'u.email as user_email', 'u.role as user_role', 'u.disabled_at as user_disabled_at'])
    .where('t.token_hash', '=', tokenHash)
    .executeTakeFirst();
}

export async function findApiToken(ex: Executor, id: string): Promise<ApiTokenRow | undefined> {
  return ex.selectFrom('api_tokens').selectAll().where('id', '=', id).executeTakeFirst();
}

/** last_used_at, at most once per `minGapMs` (see touchSession). */
export async function touchApiToken(ex: Executor, id: string, now: Date, minGapMs: number): Promise<boolean> {
  const r = await ex
    .updateTable('api_tokens')
    .set({ last_used_at: now })
    .where('id', '=', id)
    .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', new Date(now.getTime() - minGapMs))]))
    .executeTakeFirst();
  return r.numUpdatedRows > 0n;
}

/** A user's tokens, revoked ones included, newest first. */
export async function listApiTokens(ex: Executor, userId: string): Promise<ApiTokenRow[]> {
  return ex.selectFrom('api_tokens').selectAll().where('user_id', '=', userId).orderBy('created_at', 'desc').limit(1000).execute();
}

/** Revokes a token (once); with `userId`, only that user's. The row stays (the audit trail names it). */
export async function revokeApiToken(ex: Executor, id: string, now: Date, userId?: string): Promise<ApiTokenRow | undefined> {
  let q = ex.updateTable('api_tokens').set({ revoked_at: now }).where('id', '=', id).where('revoked_at', 'is', null);
  if (userId !== undefined) q = q.where('user_id', '=', userId);
  return q.returningAll().executeTakeFirst();
}

// ---- one-time links ----------------------------------------------------------------------

export async function insertInvite(ex: Executor, i: NewInvite): Promise<InviteRow> {
  return ex.insertInto('invites').values(i).returningAll().executeTakeFirstOrThrow();
}

/**
 * Uses a one-time link: one conditional UPDATE, so two concurrent accepts cannot both succeed.
 * Undefined when the link is unknown, used or expired at `now`.
 */
export async function claimInvite(ex: Executor, tokenHash: Buffer, now: Date): Promise<InviteRow | undefined> {
  return ex
    .updateTable('invites')
    .set({ used_at: now })
    .where('token_hash', '=', tokenHash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .returningAll()
    .executeTakeFirst();
}

/** Earlier unused links of a user stop working when a new one is issued. */
export async function expireUserInvites(ex: Executor, userId: string, now: Date): Promise<number> {
  const r = await ex
    .updateTable('invites')
    .set({ expires_at: now })
    .where('user_id', '=', userId)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

export async function findInvite(ex: Executor, tokenHash: Buffer): Promise<InviteRow | undefined> {
  return ex.selectFrom('invites').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
}

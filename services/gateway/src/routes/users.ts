/**
 * People and invites (issue 18, docs/api.md "People"): admins list, invite, disable, change
 * roles and issue password-reset links; a one-time link (`PUBLIC_URL/invite#<token>`, default
 * 72 h) lets the person set their name and password. The link's token is 256 random bits, stored
 * as SHA-256 and used once (claimInvite is one conditional UPDATE).
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  AcceptInviteBody,
  CreateUserBody,
  ErrorBody,
  IdParams,
  InviteLink,
  isEmailAddress,
  PageQuery,
  UpdateUserBody,
  User,
  UserPage,
  type User as ApiUser,
} from '@hatch/contracts';
import {
  claimInvite,
  deleteUserSessions,
  expireUserInvites,
  findInvite,
  findUser,
  findUserByEmail,
  insertInvite,
  insertUser,
  listUsers,
  updateUser,
  type Db,
  type UserRow,
} from '@hatch/db';
import { randomSecret, setSessionCookie, sha256, type Authenticator, type Caller } from '../auth.js';
import { HttpError } from '../errors.js';
import { decodeCursor, encodeCursor } from '../cursor.js';
import { checkPassword, type PasswordHasher } from '../passwords.js';
import type { AuthFailureLimiter } from '../auth-failures.js';
import type { Revocations } from '../revocations.js';
import type { Audit } from '../audit.js';
import { callerOf, uuidParam } from './session.js';

export interface UserRouteDeps {
  db: Db;
  auth: Authenticator;
  hasher: PasswordHasher;
  revocations: Revocations;
  audit: Audit;
  failures: AuthFailureLimiter;
  publicUrl: string;
  inviteMs: number;
  secureCookies: boolean;
}

export function toApiUser(u: UserRow): ApiUser {
  return {
    id: u.id,
    name: u.name,
    email: u.email,
    role: u.role === 'admin' ? 'admin' : 'agent',
    created_at: u.created_at.toISOString(),
    disabled_at: u.disabled_at?.toISOString() ?? null,
    pending: u.password_hash === null,
  };
}

const ADMIN = { role: 'admin' as const };

/** A person's email as given (trimmed), or 400 naming body.email. */
function emailOf(raw: string): string {
  const email = raw.trim();
  if (!isEmailAddress(email)) {
    throw new HttpError('INVALID_REQUEST', 'body.email must be an email address', {
      details: [{ field: 'body.email', message: 'must be an email address' }],
    });
  }
  return email;
}

const emailTaken = () => new HttpError('CONFLICT', 'a person with this email exists');

/** Runs a write that sets an email: a concurrent one that took it first (users_email_unique) is 409 too. */
async function uniqueEmail<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if ((err as { code?: string }).code === '23505') throw emailTaken();
    throw err;
  }
}

export function userRoutes(instance: FastifyInstance, deps: UserRouteDeps): void {
  const api = instance.withTypeProvider<TypeBoxTypeProvider>();

  /** A new one-time link for `user`; earlier unused ones stop working. */
  const issueLink = async (user: UserRow, purpose: 'invite' | 'reset', by: Caller) => {
    const secret = randomSecret();
    const now = deps.auth.now();
    const expires = new Date(now + deps.inviteMs);
    await deps.db.db.transaction().execute(async (tx) => {
      await expireUserInvites(tx, user.id, new Date(now));
      await insertInvite(tx, { token_hash: sha256(secret), user_id: user.id, purpose, created_by: by.userId, expires_at: expires });
    });
    return { user: toApiUser(user), link: `${deps.publicUrl}/invite#${secret}`, expires_at: expires.toISOString() };
  };

  api.get(
    '/users',
    {
      schema: {
        tags: ['people'],
        operationId: 'listUsers',
        summary: 'People, the newest first (admin)',
        querystring: PageQuery,
        response: { 200: UserPage, '4xx': ErrorBody },
      },
      config: { ...ADMIN, openapi: { errors: ['FORBIDDEN'] } },
    },
    async (req) => {
      const limit = req.query.limit ?? 50;
      const rows = await listUsers(deps.db.db, { limit: limit + 1, before: decodeCursor(req.query.before) });
      const page = rows.slice(0, limit);
      const tail = page[page.length - 1];
      return {
        users: page.map(toApiUser),
        next_cursor: rows.length > limit && tail ? encodeCursor({ at: tail.created_at, id: tail.id }) : null,
      };
    },
  );

  api.post(
    '/users',
    {
      schema: {
        tags: ['people'],
        operationId: 'inviteUser',
        summary: 'Invite a person (admin): answers a one-time link where they set their name and password',
        body: CreateUserBody,
        response: { 201: InviteLink, '4xx': ErrorBody },
      },
      config: { ...ADMIN, openapi: { errors: ['FORBIDDEN', 'CONFLICT'] } },
    },
    async (req, reply) => {
      const c = callerOf(req);
      const email = emailOf(req.body.email);
      if (await findUserByEmail(deps.db.db, email)) throw emailTaken();
      const user = await uniqueEmail(() => insertUser(deps.db.db, { email, role: req.body.role, name: req.body.name ?? email }));
      const link = await issueLink(user, 'invite', c);
      await deps.audit({ kind: 'user_invited', actor: c, subject: { user_id: user.id }, address: req.ip });
      return reply.code(201).send(link);
    },
  );

  api.patch(
    '/users/:id',
    {
      schema: {
        tags: ['people'],
        operationId: 'updateUser',
        summary: "Change a person's role or email, or disable / enable them (admin); disabling ends their sessions and tokens at once",
        params: IdParams,
        body: UpdateUserBody,
        response: { 200: User, '4xx': ErrorBody },
      },
      config: { ...ADMIN, openapi: { errors: ['FORBIDDEN', 'NOT_FOUND', 'CONFLICT'] } },
    },
    async (req) => {
      const c = callerOf(req);
      const id = uuidParam(req.params.id, 'a user id');
      const before = await findUser(deps.db.db, id);
      if (!before) throw new HttpError('NOT_FOUND', 'no such person');
      const { role, disabled } = req.body;
      const email = req.body.email === undefined ? undefined : emailOf(req.body.email);
      if (id === c.userId && (disabled === true || role === 'agent')) {
        throw new HttpError('CONFLICT', 'you cannot disable yourself or take away your own admin role');
      }
      const set: { role?: string; disabled_at?: Date | null; email?: string } = {};
      if (role !== undefined && role !== before.role) set.role = role;
      if (disabled === true && before.disabled_at === null) set.disabled_at = new Date(deps.auth.now());
      if (disabled === false && before.disabled_at !== null) set.disabled_at = null;
      if (email !== undefined && email !== before.email) {
        const holder = await findUserByEmail(deps.db.db, email);
        if (holder && holder.id !== id) throw emailTaken();
        set.email = email;
      }
      const after = await uniqueEmail(() =>
        deps.db.db.transaction().execute(async (tx) => {
          const u = await updateUser(tx, id, set);
          if (set.disabled_at) await deleteUserSessions(tx, id);
          return u;
        }),
      );
      if (!after) throw new HttpError('NOT_FOUND', 'no such person');
      // This replica's cached lookups carry the old email (GET /api/session, audit labels); others' age out within 5 s.
      if (set.email !== undefined) deps.auth.forgetUser(id);
      // Every replica forgets the user's cached credentials: a disabled user is refused at once,
      // a new role applies at once; their open event streams close (they reconnect if still allowed).
      if (set.role !== undefined || set.disabled_at !== undefined) deps.revocations.publish({ kind: 'user', id, user_id: id });
      const subject = { user_id: id };
      if (set.disabled_at) await deps.audit({ kind: 'user_disabled', actor: c, subject, address: req.ip });
      if (set.disabled_at === null) await deps.audit({ kind: 'user_enabled', actor: c, subject, address: req.ip });
      if (set.role !== undefined) await deps.audit({ kind: 'user_role_changed', actor: c, subject, address: req.ip });
      if (set.email !== undefined) await deps.audit({ kind: 'user_email_changed', actor: c, subject, address: req.ip });
      return toApiUser(after);
    },
  );

  api.post(
    '/users/:id/reset',
    {
      schema: {
        tags: ['people'],
        operationId: 'resetUser',
        summary: 'Issue a new one-time link where the person sets a new password (admin)',
        params: IdParams,
        response: { 201: InviteLink, '4xx': ErrorBody },
      },
      config: { ...ADMIN, openapi: { errors: ['FORBIDDEN', 'NOT_FOUND'] } },
    },
    async (req, reply) => {
      const c = callerOf(req);
      const user = await findUser(deps.db.db, uuidParam(req.params.id, 'a user id'));
      if (!user) throw new HttpError('NOT_FOUND', 'no such person');
      const link = await issueLink(user, user.password_hash === null ? 'invite' : 'reset', c);
      await deps.audit({ kind: 'user_reset', actor: c, subject: { user_id: user.id }, address: req.ip });
      return reply.code(201).send(link);
    },
  );
}

/**
 * POST /api/invites/accept: unauthenticated like the sign-in (app.ts registers it on the root
 * instance). The person sets their name and password and is signed in. An unknown, used or
 * expired link is 401 and counts as a failed authentication of the address.
 */
export function acceptInviteRoute(app: FastifyInstance, deps: UserRouteDeps): void {
  const maxAgeS = Math.floor(deps.auth.opts.absoluteMs / 1000);
  app.withTypeProvider<TypeBoxTypeProvider>().post(
    '/api/invites/accept',
    {
      schema: {
        tags: ['people'],
        operationId: 'acceptInvite',
        summary: 'Accept an invite or reset link: set name and password, and sign in',
        body: AcceptInviteBody,
        response: { '4xx': ErrorBody, 503: ErrorBody },
      },
      config: {
        openapi: {
          errors: ['INVALID_REQUEST', 'UNAUTHORIZED', 'RATE_LIMITED', 'SERVICE_UNAVAILABLE'],
          responses: { 204: { type: 'null', description: 'password set and signed in: Set-Cookie hatch_session' } },
        },
      },
    },
    async (req, reply) => {
      const refuse = async () =>
        deps.failures.refuse(req.ip, new HttpError('UNAUTHORIZED', 'this link is unknown, used or expired: ask an admin for a new one'));
      const hash = sha256(req.body.token);
      const now = deps.auth.now();
      const invite = await findInvite(deps.db.db, hash);
      if (!invite || invite.used_at !== null || invite.expires_at.getTime() <= now) throw await refuse();
      const user = await findUser(deps.db.db, invite.user_id);
      if (!user || user.disabled_at !== null) throw await refuse();
      // Checked before the link is used: a refused password leaves the link working.
      checkPassword(req.body.password, user.email);
      const name = req.body.name.trim();
      if (name.length === 0) {
        throw new HttpError('INVALID_REQUEST', 'body.name must not be blank', {
          details: [{ field: 'body.name', message: 'must not be blank' }],
        });
      }
      const passwordHash = await deps.hasher.hash(req.body.password);
      const updated = await deps.db.db.transaction().execute(async (tx) => {
        if (!(await claimInvite(tx, hash, new Date(now)))) return undefined;
        // A reset ends every session of the person: whoever knew the old password is signed out.
        if (invite.purpose === 'reset') await deleteUserSessions(tx, user.id);
        return updateUser(tx, user.id, { name, password_hash: passwordHash });
      });
      if (!updated) throw await refuse();
      if (invite.purpose === 'reset') deps.revocations.publish({ kind: 'user', id: user.id, user_id: user.id });
      const { cookie, row } = await deps.auth.openSession({
        userId: user.id,
        client: typeof req.headers['user-agent'] === 'string' ? req.headers['user-agent'] : undefined,
        address: req.ip,
      });
      const kind = invite.purpose === 'invite' ? 'user_created' : 'sign_in';
      await deps.audit({
        kind,
        actorId: user.id,
        actorLabel: user.email,
        subject: { user_id: user.id, session_id: row.id },
        address: req.ip,
      });
      return setSessionCookie(reply, cookie, maxAgeS, deps.secureCookies).code(204).send();
    },
  );
}

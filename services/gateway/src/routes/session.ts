/**
 * Sign-in, sign-out and sessions (issue 18, docs/api.md "Sessions"). A session is a row; the
 * cookie holds a random id whose SHA-256 the row keeps (auth.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ErrorBody, IdParams, isUuid, SessionBody, SessionList, UserItemParams, Whoami, type SessionInfo } from '@hatch/contracts';
import {
  deleteSession,
  deleteSessionByHash,
  findUser,
  findUserByEmail,
  listSessions,
  replacePasswordHash,
  type Db,
  type SessionRow,
} from '@hatch/db';
import { clearSessionCookie, SESSION_COOKIE, setSessionCookie, sha256, tokenMatches, type Authenticator, type Caller } from '../auth.js';
import { HttpError } from '../errors.js';
import type { AuthFailureLimiter } from '../auth-failures.js';
import { needsRehash, type PasswordHasher } from '../passwords.js';
import type { Revocations } from '../revocations.js';
import type { Audit } from '../audit.js';

export interface SessionRouteDeps {
  db: Db;
  apiToken: string;
  secureCookies: boolean;
  /** a wrong token or password counts as a failed authentication of the caller's address */
  failures: AuthFailureLimiter;
  auth: Authenticator;
  hasher: PasswordHasher;
  revocations: Revocations;
  audit: Audit;
}

const clientOf = (req: FastifyRequest) => {
  const ua = req.headers['user-agent'];
  return typeof ua === 'string' ? ua.slice(0, 200) : undefined;
};

/** The caller, which the `/api` plugin's auth hook always sets before a handler runs. */
export function callerOf(req: FastifyRequest): Caller {
  if (!req.caller) throw new HttpError('UNAUTHORIZED', 'authentication required');
  return req.caller;
}

export function uuidParam(id: string, what: string, field = 'params.id'): string {
  if (!isUuid(id)) {
    throw new HttpError('INVALID_REQUEST', `${field} must be ${what} (a UUID)`, {
      details: [{ field, message: `must be ${what} (a UUID)` }],
    });
  }
  return id.toLowerCase();
}

/** What is missing or too much in a sign-in body: each field named. */
function signInProblems(b: { email?: string; password?: string; token?: string }): Array<{ field: string; message: string }> {
  if (b.token !== undefined) {
    return [{ field: b.email !== undefined ? 'body.email' : 'body.password', message: 'is not sent with token' }];
  }
  if (b.email !== undefined) return [{ field: 'body.password', message: 'is required with email' }];
  if (b.password !== undefined) return [{ field: 'body.email', message: 'is required with password' }];
  return [
    { field: 'body.email', message: 'is required (with password), or token' },
    { field: 'body.token', message: 'is required, or email and password' },
  ];
}

/**
 * After a password matched `stored`: when `stored` was made with weaker parameters than the
 * hasher's (HATCH_PASSWORD_SCRYPT_LOG2N raised, or an old hash), hashes the password again at
 * today's (through the hasher's bounded slots, like any hash) and stores it, only while the row
 * still holds `stored` (a password changed meanwhile is never overwritten). Best effort: a
 * failure is a warn line, never a failed sign-in.
 */
async function rehashIfWeak(req: FastifyRequest, deps: SessionRouteDeps, userId: string, password: string, stored: string): Promise<void> {
  if (!needsRehash(stored, deps.hasher.params)) return;
  try {
    const replaced = await replacePasswordHash(deps.db.db, userId, stored, await deps.hasher.hash(password));
    req.log.info({ userId, ln: deps.hasher.params.ln, replaced }, 'password rehashed at sign-in');
  } catch (err) {
    req.log.warn({ userId, err: { message: (err as Error).message } }, 'password rehash at sign-in failed; the old hash stays');
  }
}

/**
 * POST /api/session: the web UI's sign-in, the one `/api` route outside the authenticating
 * plugin (app.ts registers it on the root instance). Email and password, or the bootstrap
 * token; sets an HttpOnly, SameSite=Strict session cookie.
 */
export function loginRoute(app: FastifyInstance, deps: SessionRouteDeps): void {
  const maxAgeS = Math.floor(deps.auth.opts.absoluteMs / 1000);
  app.withTypeProvider<TypeBoxTypeProvider>().post(
    '/api/session',
    {
      schema: {
        tags: ['session'],
        operationId: 'signIn',
        summary: 'Sign in with email and password (or the bootstrap API token): sets the session cookie',
        body: SessionBody,
        response: { '4xx': ErrorBody, 503: ErrorBody },
      },
      config: {
        openapi: {
          errors: ['INVALID_REQUEST', 'UNAUTHORIZED', 'RATE_LIMITED', 'SERVICE_UNAVAILABLE'],
          responses: { 204: { type: 'null', description: `signed in: Set-Cookie ${SESSION_COOKIE} (HttpOnly, SameSite=Strict)` } },
        },
      },
    },
    async (req, reply) => {
      const { email, password, token } = req.body;
      let userId: string | null;
      let label: string;
      if (token !== undefined && email === undefined && password === undefined) {
        if (!tokenMatches(token, deps.apiToken)) {
          await deps.audit({ kind: 'sign_in_failed', actorLabel: 'API token', address: req.ip });
          throw await deps.failures.refuse(req.ip, new HttpError('UNAUTHORIZED', 'wrong token'));
        }
        userId = null;
        label = 'API';
      } else if (email !== undefined && password !== undefined && token === undefined) {
        const user = await findUserByEmail(deps.db.db, email);
        // An unknown email costs a hash too: the answer's timing tells nobody who has an account.
        const ok =
          user?.password_hash != null && user.disabled_at === null
            ? await deps.hasher.verify(password, user.password_hash)
            : await deps.hasher.verifyNobody(password);
        if (!ok || !user) {
          await deps.audit({ kind: 'sign_in_failed', actorLabel: email.slice(0, 320), actorId: user?.id ?? null, address: req.ip });
          throw await deps.failures.refuse(req.ip, new HttpError('UNAUTHORIZED', 'wrong email or password'));
        }
        if (user.password_hash !== null) await rehashIfWeak(req, deps, user.id, password, user.password_hash);
        userId = user.id;
        label = user.email;
      } else {
        throw new HttpError('INVALID_REQUEST', 'send email and password, or token', { details: signInProblems(req.body) });
      }
      const { cookie, row } = await deps.auth.openSession({ userId, client: clientOf(req), address: req.ip });
      await deps.audit({
        kind: 'sign_in',
        actorId: userId,
        actorLabel: label,
        subject: { user_id: userId, session_id: row.id },
        address: req.ip,
      });
      req.log.info({ sessionId: row.id, userId }, 'signed in');
      return setSessionCookie(reply, cookie, maxAgeS, deps.secureCookies).code(204).send();
    },
  );
}

function toSessionInfo(s: SessionRow, current: string | undefined, idleMs: number): SessionInfo {
  const idleEnd = s.last_seen_at.getTime() + idleMs;
  return {
    id: s.id,
    created_at: s.created_at.toISOString(),
    last_seen_at: s.last_seen_at.toISOString(),
    expires_at: new Date(Math.min(s.expires_at.getTime(), idleEnd)).toISOString(),
    client: s.client,
    address: s.address,
    current: s.id === current,
  };
}

/** The sessions of a person (null: the bootstrap token's) that still work, newest first. */
async function liveSessions(deps: SessionRouteDeps, userId: string | null, current: string | undefined): Promise<SessionInfo[]> {
  const now = deps.auth.now();
  const idleMs = deps.auth.opts.idleMs;
  const rows = await listSessions(deps.db.db, userId);
  return rows
    .filter((s) => s.expires_at.getTime() > now && s.last_seen_at.getTime() + idleMs > now)
    .map((s) => toSessionInfo(s, current, idleMs));
}

const ADMIN = { role: 'admin' as const };

/**
 * Inside the `/api` plugin (authenticated): sign-out, who am I, my sessions, end a session; and
 * for admins, anyone's sessions (`/users/:id/sessions`: the role is the route's config).
 */
export function sessionRoutes(instance: FastifyInstance, deps: SessionRouteDeps): void {
  const api = instance.withTypeProvider<TypeBoxTypeProvider>();
  const revoked = async (req: FastifyRequest, caller: Caller, s: SessionRow, kind: 'sign_out' | 'session_revoked') => {
    deps.revocations.publish({ kind: 'session', id: s.id, user_id: s.user_id });
    await deps.audit({ kind, actor: caller, subject: { user_id: s.user_id, session_id: s.id }, address: req.ip });
  };
  /** Ends session `id` (only `owner`'s when given): 404 when there is none. */
  const end = async (req: FastifyRequest, id: string, owner?: { userId: string | null }) => {
    const s = await deleteSession(deps.db.db, id, owner);
    if (!s) throw new HttpError('NOT_FOUND', 'no such session');
    await revoked(req, callerOf(req), s, 'session_revoked');
  };
  const current = (c: Caller) => (c.credential.kind === 'session' ? c.credential.id : undefined);

  api.delete(
    '/session',
    {
      schema: { tags: ['session'], operationId: 'signOut', summary: 'Sign out: ends this session and clears its cookie' },
      config: { openapi: { responses: { 204: { type: 'null', description: 'signed out' } } } },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      const raw = req.cookies[SESSION_COOKIE];
      if (caller.credential.kind === 'session' && raw !== undefined) {
        const s = await deleteSessionByHash(deps.db.db, sha256(raw));
        if (s) await revoked(req, caller, s, 'sign_out');
      }
      return clearSessionCookie(reply, deps.secureCookies).code(204).send();
    },
  );

  api.get(
    '/session',
    {
      schema: { tags: ['session'], operationId: 'whoami', summary: 'Who the caller is: name, role, credential', response: { 200: Whoami } },
    },
    async (req) => {
      const c = callerOf(req);
      return {
        user: c.userId === null ? null : { id: c.userId, name: c.name, email: c.email ?? '' },
        name: c.name,
        role: c.role,
        credential: c.credential.kind,
      };
    },
  );

  api.get(
    '/sessions',
    {
      schema: {
        tags: ['session'],
        operationId: 'listSessions',
        summary: "The caller's sessions (the bootstrap token's: those signed in with it)",
        response: { 200: SessionList },
      },
    },
    async (req) => {
      const c = callerOf(req);
      return { sessions: await liveSessions(deps, c.userId, current(c)) };
    },
  );

  api.delete(
    '/sessions/:id',
    {
      schema: {
        tags: ['session'],
        operationId: 'endSession',
        summary: "End one of the caller's sessions (an admin: anyone's)",
        params: IdParams,
      },
      config: { openapi: { errors: ['NOT_FOUND'], responses: { 204: { type: 'null', description: 'ended' } } } },
    },
    async (req, reply) => {
      const c = callerOf(req);
      await end(req, uuidParam(req.params.id, 'a session id'), c.role === 'admin' ? undefined : { userId: c.userId });
      return reply.code(204).send();
    },
  );

  api.get(
    '/users/:id/sessions',
    {
      schema: {
        tags: ['people'],
        operationId: 'listUserSessions',
        summary: "A person's sessions that still work (admin)",
        params: IdParams,
        response: { 200: SessionList, '4xx': ErrorBody },
      },
      config: { ...ADMIN, openapi: { errors: ['FORBIDDEN', 'NOT_FOUND'] } },
    },
    async (req) => {
      const userId = uuidParam(req.params.id, 'a user id');
      if (!(await findUser(deps.db.db, userId))) throw new HttpError('NOT_FOUND', 'no such person');
      return { sessions: await liveSessions(deps, userId, current(callerOf(req))) };
    },
  );

  api.delete(
    '/users/:id/sessions/:item_id',
    {
      schema: {
        tags: ['people'],
        operationId: 'endUserSession',
        summary: "End one of a person's sessions (admin): signed out on every replica, its event streams closed",
        params: UserItemParams,
      },
      config: { ...ADMIN, openapi: { errors: ['FORBIDDEN', 'NOT_FOUND'], responses: { 204: { type: 'null', description: 'ended' } } } },
    },
    async (req, reply) => {
      const userId = uuidParam(req.params.id, 'a user id');
      await end(req, uuidParam(req.params.item_id, 'a session id', 'params.item_id'), { userId });
      return reply.code(204).send();
    },
  );
}

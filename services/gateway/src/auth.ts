/**
 * API authentication (issue 18, docs/api.md "Accounts, roles, tokens and sessions"). A caller is
 * one of:
 * - `Authorization: Bearer hatch_pat_…`: a person's API token (acts as its owner, with their role);
 * - `Authorization: Bearer <HATCH_API_TOKEN>`: the bootstrap credential, an admin shown as "API";
 * - the web UI's `hatch_session` cookie (EventSource cannot set headers): a server-side session.
 *
 * Sessions and tokens are rows; the cookie and the token carry 256 random bits, and only their
 * SHA-256 is stored (a copy of the database signs nobody in; a fast hash suffices for random
 * secrets, unlike passwords). A session ends after HATCH_SESSION_IDLE_HOURS unused and at its
 * absolute expiry (HATCH_SESSION_MAX_DAYS); last_seen_at / last_used_at are written at most once a
 * minute per credential, never once per request.
 *
 * Revocation reaches every replica within seconds: a found credential is cached here for at most
 * `cacheTtlMs` (default 5 s, bounded in entries too), and a revoked session or token or a
 * disabled user is published on `<p>.auth.revoked` (revocations.ts), which drops it from every
 * replica's cache at once. A replica that misses the message (NATS down) still stops accepting
 * it when its cache entry ages out: that bound is the documented one (SECURITY.md).
 *
 * Where it applies is decided by the route that runs, never by the request's URL string:
 * `registerAuth` adds an `onRequest` hook to the encapsulated `/api` plugin (app.ts), so it runs
 * for exactly the routes registered there, however the client spelled the target
 * (`/%61pi/...`, an absolute-form `http://host/api/...`). Testing the raw `req.url` here let
 * such targets past authentication while the router still matched the API route (SECURITY.md).
 * A route's own policy hangs off its config (`config: { role: 'admin' }`), read from the matched
 * route in the same hook.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { PERSONAL_TOKEN_PREFIX, type AuthRevoked, type Role } from '@hatch/contracts';
import {
  findApiTokenByHash,
  findSessionByHash,
  insertSession,
  touchApiToken,
  touchSession,
  type CredentialOwner,
  type Db,
  type SessionRow,
} from '@hatch/db';
import type { Logger } from '@hatch/log';
import { HttpError } from './errors.js';
import type { AuthFailureLimiter } from './auth-failures.js';

export const SESSION_COOKIE = 'hatch_session';
/** last_seen_at / last_used_at are written at most this often per credential */
export const TOUCH_GAP_MS = 60_000;
/** the longest a found credential is believed without asking the database (SECURITY.md: the revocation bound) */
export const AUTH_CACHE_TTL_MS = 5_000;
/** the name the bootstrap token goes by where a person's would be shown */
export const BOOTSTRAP_NAME = 'API';

export const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export function tokenMatches(given: string, expected: string): boolean {
  // Hashing first makes both sides equal length, so timingSafeEqual leaks neither content nor length.
  return timingSafeEqual(sha256(given), sha256(expected));
}

/** 256 random bits, base64url (43 characters): a cookie id, a token, an invite link. */
export const randomSecret = (): string => randomBytes(32).toString('base64url');
const SECRET = /^[A-Za-z0-9_-]{43}$/;

/**
 * What a caller authenticated with. `expiresAt`: the credential's absolute expiry (ms), known
 * when it was found: an open event stream is closed at it without asking the database
 * (realtime/stream-credentials.ts); null: none (a token without expiry).
 */
export type Credential =
  { kind: 'session'; id: string; expiresAt: number } | { kind: 'token'; id: string; expiresAt: number | null } | { kind: 'bootstrap' };

/** Who is calling. */
export interface Caller {
  /** the rate-limit, idempotency and SSE-cap scope: `user:<id>`, or for the bootstrap token `token:bootstrap` / `session:<id>` */
  principal: string;
  userId: string | null;
  name: string;
  email: string | null;
  role: Role;
  credential: Credential;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** who is calling: the rate-limit and idempotency scope */
    principal?: string;
    caller?: Caller;
  }
  interface FastifyContextConfig {
    /** the role a route needs (checked in the auth hook against the matched route) */
    role?: Role;
  }
}

const unauthorized = (message: string) => new HttpError('UNAUTHORIZED', message, { headers: { 'www-authenticate': 'Bearer' } });

/**
 * The outcome of authenticating a request. `guess` marks a presented credential that is wrong
 * (a wrong token, an unknown cookie): those count towards the failed-authentication limit. A
 * missing credential, or a genuine one that expired, was revoked or whose owner is disabled, is
 * not a guess.
 */
export type AuthResult = { ok: true; caller: Caller } | { ok: false; error: HttpError; guess: boolean };

export interface AuthenticatorOptions {
  apiToken: string;
  idleMs: number;
  absoluteMs: number;
  /** the clock (tests move it instead of sleeping) */
  now?: () => number;
  cacheTtlMs?: number;
  cacheMax?: number;
}

type Found =
  | { kind: 'session'; row: SessionRow & CredentialOwner }
  | {
      kind: 'token';
      row: { id: string; user_id: string; expires_at: Date | null; revoked_at: Date | null; last_used_at: Date | null } & CredentialOwner;
    };

interface CacheEntry {
  found: Found;
  at: number;
}

function ownerCaller(o: CredentialOwner, credential: Credential): Caller | undefined {
  if (o.user_id === null || o.user_role === null) return undefined;
  return {
    principal: `user:${o.user_id}`,
    userId: o.user_id,
    name: o.user_name ?? '',
    email: o.user_email,
    role: o.user_role === 'admin' ? 'admin' : 'agent',
    credential,
  };
}

export const bootstrapCaller = (principal: string, credential: Credential): Caller => ({
  principal,
  userId: null,
  name: BOOTSTRAP_NAME,
  email: null,
  role: 'admin',
  credential,
});

export class Authenticator {
  readonly now: () => number;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly ttl: number;
  private readonly max: number;

  constructor(
    private readonly deps: { db: Db; log: Logger },
    readonly opts: AuthenticatorOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.ttl = opts.cacheTtlMs ?? AUTH_CACHE_TTL_MS;
    this.max = opts.cacheMax ?? 10_000;
  }

  /** Identifies the caller. A malformed header or cookie is a refusal like a wrong one (401), never a 5xx. */
  async authenticate(req: FastifyRequest): Promise<AuthResult> {
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = /^Bearer +([\x21-\x7e]{1,1024}) *$/i.exec(header);
      const given = m?.[1];
      if (given === undefined) return { ok: false, error: unauthorized('invalid API token'), guess: true };
      if (given.startsWith(PERSONAL_TOKEN_PREFIX)) return this.byToken(given.slice(PERSONAL_TOKEN_PREFIX.length));
      if (tokenMatches(given, this.opts.apiToken)) return { ok: true, caller: bootstrapCaller('token:bootstrap', { kind: 'bootstrap' }) };
      return { ok: false, error: unauthorized('invalid API token'), guess: true };
    }
    const raw = req.cookies[SESSION_COOKIE];
    if (raw !== undefined) return this.bySession(raw);
    return { ok: false, error: unauthorized('authentication required: send Authorization: Bearer <token>'), guess: false };
  }

  private async bySession(raw: string): Promise<AuthResult> {
    if (!SECRET.test(raw)) {
      // The stateless `v1.<expiry>.<id>.<signature>` cookie of earlier versions: a real browser
      // signed in before the upgrade, not a guess (docs/api.md: sign in again).
      const old = /^v1\.\d{1,12}\.[A-Za-z0-9_-]{22}\./.test(raw);
      return { ok: false, error: unauthorized(old ? 'session ended: sign in again' : 'invalid session: sign in again'), guess: !old };
    }
    const hash = sha256(raw);
    const found = await this.lookup(hash, async () => {
      const row = await findSessionByHash(this.deps.db.db, hash);
      return row && { kind: 'session' as const, row };
    });
    if (!found || found.kind !== 'session') return { ok: false, error: unauthorized('invalid session: sign in again'), guess: true };
    const s = found.row;
    const now = this.now();
    if (s.expires_at.getTime() <= now || s.last_seen_at.getTime() + this.opts.idleMs <= now) {
      this.cache.delete(hash.toString('hex'));
      return { ok: false, error: unauthorized('session expired: sign in again'), guess: false };
    }
    const credential: Credential = { kind: 'session', id: s.id, expiresAt: s.expires_at.getTime() };
    const caller = s.user_id === null ? bootstrapCaller(`session:${s.id}`, credential) : ownerCaller(s, credential);
    if (!caller || s.user_disabled_at !== null) return { ok: false, error: unauthorized('account disabled'), guess: false };
    if (now - s.last_seen_at.getTime() >= TOUCH_GAP_MS) {
      s.last_seen_at = new Date(now);
      this.touch(() => touchSession(this.deps.db.db, hash, new Date(now), TOUCH_GAP_MS));
    }
    return { ok: true, caller };
  }

  private async byToken(secret: string): Promise<AuthResult> {
    if (!SECRET.test(secret)) return { ok: false, error: unauthorized('invalid API token'), guess: true };
    const hash = sha256(secret);
    const found = await this.lookup(hash, async () => {
      const row = await findApiTokenByHash(this.deps.db.db, hash);
      return row && { kind: 'token' as const, row };
    });
    if (!found || found.kind !== 'token') return { ok: false, error: unauthorized('invalid API token'), guess: true };
    const tok = found.row;
    const now = this.now();
    if (tok.revoked_at !== null) return { ok: false, error: unauthorized('API token revoked'), guess: false };
    if (tok.expires_at !== null && tok.expires_at.getTime() <= now)
      return { ok: false, error: unauthorized('API token expired'), guess: false };
    const caller = ownerCaller(tok, { kind: 'token', id: tok.id, expiresAt: tok.expires_at?.getTime() ?? null });
    if (!caller || tok.user_disabled_at !== null) return { ok: false, error: unauthorized('account disabled'), guess: false };
    if (tok.last_used_at === null || now - tok.last_used_at.getTime() >= TOUCH_GAP_MS) {
      tok.last_used_at = new Date(now);
      this.touch(() => touchApiToken(this.deps.db.db, tok.id, new Date(now), TOUCH_GAP_MS));
    }
    return { ok: true, caller };
  }

  private async lookup(hash: Buffer, load: () => Promise<Found | undefined>): Promise<Found | undefined> {
    const key = hash.toString('hex');
    const hit = this.cache.get(key);
    const now = Date.now(); // the cache's age is real time, whatever clock decides expiry
    if (hit && now - hit.at < this.ttl) return hit.found;
    this.cache.delete(key);
    const found = await load();
    if (found) {
      if (this.cache.size >= this.max) {
        const oldest = this.cache.keys().next().value;
        if (oldest !== undefined) this.cache.delete(oldest);
      }
      this.cache.set(key, { found, at: now });
    }
    return found;
  }

  private touch(write: () => Promise<unknown>): void {
    write().catch((err: unknown) => this.deps.log.warn({ err: { message: (err as Error).message } }, 'last-used time not recorded'));
  }

  /** A revocation (from this replica or another): forget what it names at once. */
  forget(ev: AuthRevoked): void {
    for (const [key, e] of this.cache) {
      const f = e.found;
      const hit =
        ev.kind === 'user'
          ? f.row.user_id === ev.id
          : ev.kind === 'session'
            ? f.kind === 'session' && f.row.id === ev.id
            : f.kind === 'token' && f.row.id === ev.id;
      if (hit) this.cache.delete(key);
    }
  }

  /** Forgets every cached credential of a user (a role change takes effect at once). */
  forgetUser(userId: string): void {
    this.forget({ kind: 'user', id: userId, user_id: userId });
  }

  /** Opens a session: the row (only the id's hash) and the cookie value to set. */
  async openSession(s: { userId: string | null; client?: string; address?: string }): Promise<{ cookie: string; row: SessionRow }> {
    const cookie = randomSecret();
    const now = this.now();
    const row = await insertSession(this.deps.db.db, {
      id_hash: sha256(cookie),
      user_id: s.userId,
      created_at: new Date(now),
      last_seen_at: new Date(now),
      expires_at: new Date(now + this.opts.absoluteMs),
      client: s.client?.slice(0, 200) ?? null,
      address: s.address ?? null,
    });
    return { cookie, row };
  }
}

export function setSessionCookie(reply: FastifyReply, value: string, maxAgeS: number, secure: boolean): FastifyReply {
  return reply.setCookie(SESSION_COOKIE, value, { path: '/', httpOnly: true, sameSite: 'strict', maxAge: maxAgeS, secure });
}

export function clearSessionCookie(reply: FastifyReply, secure: boolean): FastifyReply {
  return reply.clearCookie(SESSION_COOKIE, { path: '/', httpOnly: true, sameSite: 'strict', secure });
}

/** Refuses a caller without the role a route needs: 403 in the error shape. */
export function requireRole(caller: Caller | undefined, role: Role): void {
  if (role === 'admin' && caller?.role !== 'admin') throw new HttpError('FORBIDDEN', 'this needs an admin');
}

/**
 * Authenticates every request routed to `scope` (the `/api` plugin; app.ts), then applies the
 * matched route's `config.role`. A wrong credential goes through the failed-authentication
 * limiter (429 past it, auth-failures.ts).
 */
export function registerAuth(scope: FastifyInstance, auth: Authenticator, failures: AuthFailureLimiter): void {
  scope.addHook('onRequest', async (req) => {
    const result = await auth.authenticate(req);
    if (!result.ok) throw result.guess ? await failures.refuse(req.ip, result.error) : result.error;
    req.caller = result.caller;
    req.principal = result.caller.principal;
    const role = req.routeOptions.config.role;
    if (role !== undefined) requireRole(req.caller, role);
  });
}

/** A session cookie as a browser sends it back (tests that open streams with a cookie). */
export async function newSessionCookie(app: FastifyInstance, userId: string | null = null): Promise<string> {
  const { cookie } = await app.accounts.openSession({ userId });
  return `${SESSION_COOKIE}=${cookie}`;
}

declare module 'fastify' {
  interface FastifyInstance {
    accounts: Authenticator;
  }
}

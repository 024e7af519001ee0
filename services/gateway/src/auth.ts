/**
 * API authentication: `Authorization: Bearer <token>` or the web UI's session cookie
 * (EventSource cannot set headers). Tokens compare in constant time.
 *
 * Where it applies is decided by the route that runs, never by the request's URL string:
 * `registerAuth` adds an `onRequest` hook to the encapsulated `/api` plugin (app.ts), so it runs
 * for exactly the routes registered there, however the client spelled the target
 * (`/%61pi/...`, an absolute-form `http://host/api/...`). Testing the raw `req.url` here let
 * such targets past authentication while the router still matched the API route (SECURITY.md).
 *
 * The session cookie is stateless and signed through @fastify/cookie (HMAC-SHA256 with a key
 * derived from the API token): its value is `v1.<expiry>.<id>`, so any gateway replica verifies
 * it without shared state, and rotating the API token ends every session.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HttpError } from './errors.js';
import type { AuthFailureLimiter } from './auth-failures.js';

export const SESSION_COOKIE = 'hatch_session';
export const SESSION_TTL_SECONDS = 7 * 24 * 3600;

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export function tokenMatches(given: string, expected: string): boolean {
  // Hashing first makes both sides equal length, so timingSafeEqual leaks neither content nor length.
  return timingSafeEqual(digest(given), digest(expected));
}

/** The session cookie's signing secret (@fastify/cookie's `secret`), derived from the API token. */
export function sessionSecret(apiToken: string): string {
  return createHmac('sha256', apiToken).update('hatch-session-v1').digest('base64url');
}

/**
 * The (unsigned) session value: `v1.<expiry in unix seconds>.<random id>`. The id makes each
 * sign-in its own principal (`session:<id>`): its own rate-limit bucket, idempotency scope and
 * SSE connection cap, instead of every browser sharing the API token's.
 */
export function sessionValue(nowMs = Date.now()): string {
  return `v1.${Math.floor(nowMs / 1000) + SESSION_TTL_SECONDS}.${randomBytes(16).toString('base64url')}`;
}

/** A signed session value as a browser sends it back (tests that open streams with a cookie). */
export function signedSession(app: FastifyInstance, nowMs = Date.now()): string {
  return app.signCookie(sessionValue(nowMs));
}

const SESSION_VALUE = /^v1\.(\d{1,12})\.([A-Za-z0-9_-]{22})$/;

export function setSessionCookie(reply: FastifyReply, secure: boolean): FastifyReply {
  return reply.setCookie(SESSION_COOKIE, sessionValue(), {
    signed: true,
    path: '/',
    httpOnly: true,
    sameSite: 'strict',
    maxAge: SESSION_TTL_SECONDS,
    secure,
  });
}

export function clearSessionCookie(reply: FastifyReply, secure: boolean): FastifyReply {
  return reply.clearCookie(SESSION_COOKIE, { path: '/', httpOnly: true, sameSite: 'strict', secure });
}

declare module 'fastify' {
  interface FastifyRequest {
    /** who is calling: the rate-limit and idempotency scope */
    principal?: string;
  }
}

const unauthorized = (message: string) => new HttpError('UNAUTHORIZED', message, { headers: { 'www-authenticate': 'Bearer' } });

/**
 * The outcome of authenticating a request. `guess` marks a presented credential that is wrong
 * (a wrong token, a forged or malformed cookie): those count towards the failed-authentication
 * limit. A missing credential or a genuine session that merely expired is not a guess.
 */
export type AuthResult = { ok: true; principal: string } | { ok: false; error: HttpError; guess: boolean };

/**
 * Identifies the caller from a bearer token or the session cookie. A malformed header or cookie
 * is a refusal like a wrong one (401), never a 5xx.
 */
export function authenticate(req: FastifyRequest, apiToken: string, nowMs = Date.now()): AuthResult {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const m = /^Bearer +([\x21-\x7e]{1,1024}) *$/i.exec(header);
    if (m && tokenMatches(m[1] as string, apiToken)) return { ok: true, principal: 'token:bootstrap' };
    return { ok: false, error: unauthorized('invalid API token'), guess: true };
  }
  const raw = req.cookies[SESSION_COOKIE];
  if (raw !== undefined) {
    const { valid, value } = req.unsignCookie(raw);
    const m = valid && value !== null ? SESSION_VALUE.exec(value) : null;
    if (!m) return { ok: false, error: unauthorized('invalid session: sign in again'), guess: true };
    if (Number(m[1]) * 1000 >= nowMs) return { ok: true, principal: `session:${m[2]}` };
    return { ok: false, error: unauthorized('session expired: sign in again'), guess: false };
  }
  return { ok: false, error: unauthorized('authentication required: send Authorization: Bearer <token>'), guess: false };
}

/**
 * Authenticates every request routed to `scope` (the `/api` plugin; app.ts). A wrong credential
 * goes through the failed-authentication limiter (429 past it, auth-failures.ts).
 */
export function registerAuth(scope: FastifyInstance, apiToken: string, failures: AuthFailureLimiter): void {
  scope.addHook('onRequest', async (req) => {
    const result = authenticate(req, apiToken);
    if (result.ok) {
      req.principal = result.principal;
      return;
    }
    throw result.guess ? await failures.refuse(req.ip, result.error) : result.error;
  });
}

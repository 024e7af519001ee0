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
 * derived from the API token): its value is `v1.<expiry>`, so any gateway replica verifies it
 * without shared state, and rotating the API token ends every session.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HttpError } from './errors.js';

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

/** The (unsigned) session value: `v1.<expiry in unix seconds>`. */
export function sessionValue(nowMs = Date.now()): string {
  return `v1.${Math.floor(nowMs / 1000) + SESSION_TTL_SECONDS}`;
}

/** A signed session value as a browser sends it back (tests that open streams with a cookie). */
export function signedSession(app: FastifyInstance, nowMs = Date.now()): string {
  return app.signCookie(sessionValue(nowMs));
}

function sessionUnexpired(value: string, nowMs: number): boolean {
  const m = /^v1\.(\d{1,12})$/.exec(value);
  return m !== null && Number(m[1]) * 1000 >= nowMs;
}

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
 * Identifies the caller; throws 401 when neither a valid bearer token nor a valid session
 * cookie is present. A malformed header or cookie is a 401 like a wrong one, never a 5xx.
 */
export function authenticate(req: FastifyRequest, apiToken: string, nowMs = Date.now()): string {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const m = /^Bearer +([\x21-\x7e]{1,1024}) *$/i.exec(header);
    if (m && tokenMatches(m[1] as string, apiToken)) return 'token:bootstrap';
    throw unauthorized('invalid API token');
  }
  const raw = req.cookies[SESSION_COOKIE];
  if (raw !== undefined) {
    const { valid, value } = req.unsignCookie(raw);
    if (valid && value !== null && sessionUnexpired(value, nowMs)) return 'token:bootstrap';
    throw unauthorized('session expired or invalid: sign in again');
  }
  throw unauthorized('authentication required: send Authorization: Bearer <token>');
}

/** Authenticates every request routed to `scope` (the `/api` plugin; app.ts). */
export function registerAuth(scope: FastifyInstance, apiToken: string): void {
  scope.addHook('onRequest', async (req) => {
    req.principal = authenticate(req, apiToken);
  });
}

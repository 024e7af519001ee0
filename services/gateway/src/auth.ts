/**
 * API authentication: `Authorization: Bearer <token>` or the web UI's session cookie
 * (EventSource cannot set headers). Tokens compare in constant time. The session cookie is
 * stateless — `v1.<expiry>.<HMAC-SHA256(key derived from the API token, expiry)>` — so any
 * gateway replica verifies it without shared state, and rotating the API token ends sessions.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { HttpError } from './errors.js';

export const SESSION_COOKIE = 'hatch_session';
export const SESSION_TTL_SECONDS = 7 * 24 * 3600;

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export function tokenMatches(given: string, expected: string): boolean {
  // Hashing first makes both sides equal length, so timingSafeEqual leaks neither content nor length.
  return timingSafeEqual(digest(given), digest(expected));
}

function sessionKey(apiToken: string): Buffer {
  return createHmac('sha256', apiToken).update('hatch-session-v1').digest();
}

export function issueSession(apiToken: string, nowMs = Date.now()): string {
  const expires = Math.floor(nowMs / 1000) + SESSION_TTL_SECONDS;
  const mac = createHmac('sha256', sessionKey(apiToken)).update(String(expires)).digest('base64url');
  return `v1.${expires}.${mac}`;
}

export function sessionValid(value: string, apiToken: string, nowMs = Date.now()): boolean {
  const m = /^v1\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(value);
  if (!m) return false;
  const expires = Number(m[1]);
  if (expires * 1000 < nowMs) return false;
  const expected = createHmac('sha256', sessionKey(apiToken)).update(String(expires)).digest('base64url');
  return timingSafeEqual(Buffer.from(m[2] as string), Buffer.from(expected));
}

export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return undefined;
}

export function sessionCookie(value: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_TTL_SECONDS}${secure ? '; Secure' : ''}`;
}

export function clearedSessionCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure ? '; Secure' : ''}`;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** who is calling: the rate-limit and idempotency scope */
    principal?: string;
  }
}

/** Identifies the caller; throws 401 when neither a valid bearer token nor a valid session cookie is present. */
export function authenticate(req: FastifyRequest, apiToken: string): string {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (m && tokenMatches(m[1] as string, apiToken)) return 'token:bootstrap';
    throw new HttpError('UNAUTHORIZED', 'invalid API token', { headers: { 'www-authenticate': 'Bearer' } });
  }
  const cookie = readCookie(req.headers.cookie, SESSION_COOKIE);
  if (cookie && sessionValid(cookie, apiToken)) return 'token:bootstrap';
  throw new HttpError('UNAUTHORIZED', 'authentication required: send Authorization: Bearer <token>', { headers: { 'www-authenticate': 'Bearer' } });
}

/** Every /api/* route needs auth except the login itself. */
export function registerAuth(app: FastifyInstance, apiToken: string): void {
  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0] ?? '';
    if (!path.startsWith('/api/') && path !== '/api') return;
    if (path === '/api/session' && req.method === 'POST') return;
    req.principal = authenticate(req, apiToken);
  });
}

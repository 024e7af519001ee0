import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ErrorBody, SessionBody } from '@hatch/contracts';
import { clearSessionCookie, SESSION_COOKIE, setSessionCookie, tokenMatches } from '../auth.js';
import { HttpError } from '../errors.js';
import type { AuthFailureLimiter } from '../auth-failures.js';

export interface SessionRouteDeps {
  apiToken: string;
  secureCookies: boolean;
  /** a wrong token counts as a failed authentication of the caller's address */
  failures: AuthFailureLimiter;
}

/**
 * POST /api/session: the web UI's login, the one `/api` route outside the authenticating
 * plugin (app.ts registers it on the root instance). Sets an HttpOnly, SameSite=Strict,
 * signed session cookie.
 */
export function loginRoute(app: FastifyInstance, deps: SessionRouteDeps): void {
  app.withTypeProvider<TypeBoxTypeProvider>().post(
    '/api/session',
    {
      schema: {
        tags: ['session'],
        operationId: 'signIn',
        summary: 'Sign in with the API token: sets the session cookie',
        body: SessionBody,
        response: { 401: ErrorBody, 429: ErrorBody },
      },
      config: {
        openapi: {
          errors: ['UNAUTHORIZED', 'RATE_LIMITED', 'SERVICE_UNAVAILABLE'],
          responses: { 204: { type: 'null', description: `signed in: Set-Cookie ${SESSION_COOKIE} (HttpOnly, SameSite=Strict)` } },
        },
      },
    },
    async (req, reply) => {
      if (!tokenMatches(req.body.token, deps.apiToken))
        throw await deps.failures.refuse(req.ip, new HttpError('UNAUTHORIZED', 'wrong token'));
      return setSessionCookie(reply, deps.secureCookies).code(204).send();
    },
  );
}

/** DELETE /api/session (inside the `/api` plugin, so authenticated): clears the cookie. */
export function logoutRoute(api: FastifyInstance, deps: SessionRouteDeps): void {
  api.delete(
    '/session',
    {
      schema: { tags: ['session'], operationId: 'signOut', summary: 'Sign out: clears the session cookie' },
      config: { openapi: { responses: { 204: { type: 'null', description: 'signed out' } } } },
    },
    async (_req, reply) => clearSessionCookie(reply, deps.secureCookies).code(204).send(),
  );
}

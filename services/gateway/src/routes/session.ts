import type { FastifyInstance } from 'fastify';
import { ErrorBody, SessionBody } from '@hatch/contracts';
import { clearedSessionCookie, issueSession, sessionCookie, tokenMatches } from '../auth.js';
import { HttpError } from '../errors.js';

/** The web UI's login / logout: an HttpOnly, SameSite=Strict session cookie. */
export function sessionRoutes(app: FastifyInstance, deps: { apiToken: string; secureCookies: boolean }): void {
  app.post<{ Body: SessionBody }>(
    '/api/session',
    { schema: { body: SessionBody, response: { 401: ErrorBody } } },
    async (req, reply) => {
      if (!tokenMatches(req.body.token, deps.apiToken)) throw new HttpError('UNAUTHORIZED', 'wrong token');
      return reply.header('set-cookie', sessionCookie(issueSession(deps.apiToken), deps.secureCookies)).code(204).send();
    },
  );
  app.delete('/api/session', async (_req, reply) => {
    return reply.header('set-cookie', clearedSessionCookie(deps.secureCookies)).code(204).send();
  });
}

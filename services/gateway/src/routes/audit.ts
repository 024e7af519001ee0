/** GET /api/audit (admin; issue 18): the audit trail, the newest first, filtered by user and kind. */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AuditPage, AuditQuery, ErrorBody, type AuditEvent } from '@hatch/contracts';
import { listAuditEvents, type AuditEventRow, type Db } from '@hatch/db';
import { HttpError } from '../errors.js';

export function toAuditEvent(e: AuditEventRow): AuditEvent {
  return {
    id: String(e.id),
    at: e.at.toISOString(),
    kind: e.kind,
    actor_id: e.actor_id,
    actor_label: e.actor_label,
    subject: e.subject !== null && typeof e.subject === 'object' && !Array.isArray(e.subject) ? e.subject : {},
    address: e.address,
  };
}

export function auditRoutes(instance: FastifyInstance, deps: { db: Db }): void {
  instance.withTypeProvider<TypeBoxTypeProvider>().get(
    '/audit',
    {
      schema: {
        tags: ['people'],
        operationId: 'listAuditEvents',
        summary: 'The audit trail, the newest first (admin): sign-ins, sessions, tokens, people',
        querystring: AuditQuery,
        response: { 200: AuditPage, '4xx': ErrorBody },
      },
      config: { role: 'admin', openapi: { errors: ['FORBIDDEN'] } },
    },
    async (req) => {
      const q = req.query;
      // The cursor is the last row's id (ids only grow): any other value is refused, not guessed at.
      if (q.before !== undefined && !/^[0-9]{1,19}$/.test(q.before)) {
        throw new HttpError('INVALID_REQUEST', 'before is not a valid cursor (pass next_cursor from the previous page)', {
          details: [{ field: 'querystring.before', message: 'is not a valid cursor' }],
        });
      }
      const limit = q.limit ?? 50;
      const rows = await listAuditEvents(deps.db.db, {
        limit: limit + 1,
        before: q.before,
        userId: q.user_id?.toLowerCase(),
        kind: q.kind,
      });
      const page = rows.slice(0, limit);
      const tail = page[page.length - 1];
      return { events: page.map(toAuditEvent), next_cursor: rows.length > limit && tail ? String(tail.id) : null };
    },
  );
}

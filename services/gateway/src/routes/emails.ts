/**
 * Email API (contract "HTTP API", issue 7): send an email, list emails, one email with its
 * delivery timeline. The route writes the email row, its attachment content (its own table,
 * never the main row: deleted once sent or after retention), the first timeline row and the
 * outbox row in one transaction, then hands the outbox row to the relay (docs/architecture.md, rule 1).
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  checkSendEmail,
  EmailPage,
  EmailWithTimeline,
  ErrorBody,
  IdParams,
  isUuid,
  PageQuery,
  SEND_EMAIL_BODY_LIMIT_BYTES,
  SendEmailBody,
  SendEmailResponse,
  type Email,
  type ErrorDetail,
} from '@hatch/contracts';
import { newRecordId } from '@hatch/contracts/node';
import {
  findEmail,
  findTimeline,
  insertEmail,
  insertEmailAttachments,
  insertOutbox,
  insertStatusEvent,
  listEmails,
  type Db,
  type EmailRow,
} from '@hatch/db';
import { HttpError } from '../errors.js';
import { completeIdempotency } from '../idempotency.js';
import { createdKey, pageOf } from '../cursor.js';
import { toTimelineEntry } from '../present.js';
import { attributionOf, senderNames, sentByOf, type SenderNames } from '../attribution.js';
import type { Audit } from '../audit.js';
import type { OutboxRelay } from '../outbox-relay.js';

export interface EmailRouteDeps {
  db: Db;
  relay: OutboxRelay;
  /** SENDGRID_FROM_EMAIL when the gateway knows it; the email-sender writes the one it sends from */
  fromEmail?: string;
  audit: Audit;
}

export function toApiEmail(e: EmailRow, names: SenderNames): Email {
  return {
    id: e.id,
    to_email: e.to_email,
    from_email: e.from_email,
    subject: e.subject,
    body: e.body,
    html_content: e.html_content,
    cc: e.cc,
    bcc: e.bcc,
    reply_to: e.reply_to,
    attachments: (Array.isArray(e.attachments) ? e.attachments : []) as Email['attachments'],
    status: e.status,
    provider_message_id: e.provider_message_id,
    provider_response: e.provider_response ?? null,
    error_code: e.error_code,
    error_message: e.error_message,
    sent_by: sentByOf(e, names),
    created_at: e.created_at.toISOString(),
    updated_at: e.updated_at.toISOString(),
  };
}

export function emailRoutes(instance: FastifyInstance, deps: EmailRouteDeps): void {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>();
  const { db } = deps;

  app.post(
    '/send_email',
    {
      // Attachments (≤ 20 MB decoded, base64 in JSON) need more than the global 64 KiB.
      bodyLimit: SEND_EMAIL_BODY_LIMIT_BYTES,
      schema: {
        tags: ['emails'],
        operationId: 'sendEmail',
        summary: 'Send an email (attachments base64 in the body)',
        body: SendEmailBody,
        response: { 202: SendEmailResponse, '4xx': ErrorBody },
      },
      config: { idempotent: true },
    },
    async (req, reply) => {
      const checked = checkSendEmail(req.body);
      if (!checked.ok) {
        const first = checked.details[0] as ErrorDetail;
        throw new HttpError('INVALID_REQUEST', `${first.field} ${first.message}`, { details: checked.details });
      }
      const b = req.body;
      const { to, cc, bcc, attachmentSizes } = checked.value;
      const id = newRecordId();
      const attachments = b.attachments ?? [];
      const response = { success: true as const, email_id: id, status: 'queued' as const, message: 'Email queued for delivery' };
      const who = attributionOf(req.caller);
      const outbox = await db.db.transaction().execute(async (tx) => {
        await insertEmail(tx, {
          ...who,
          id,
          to_email: to,
          from_email: deps.fromEmail ?? '',
          subject: b.subject,
          body: b.body,
          html_content: b.html_content ?? null,
          cc,
          bcc,
          reply_to: b.reply_to ?? null,
          attachments: attachments.map((a, i) => ({ filename: a.filename, type: a.type.toLowerCase(), size: attachmentSizes[i] ?? 0 })),
          status: 'queued',
        });
        await insertEmailAttachments(
          tx,
          attachments.map((a, i) => ({
            email_id: id,
            position: i,
            filename: a.filename,
            content_type: a.type.toLowerCase(),
            content: Buffer.from(a.content, 'base64'),
          })),
        );
        await insertStatusEvent(tx, { email_id: id, status: 'queued', source: 'api', ...who });
        const row = await insertOutbox(tx, { kind: 'email', entity_id: id, dedupe_id: id });
        await completeIdempotency(tx, req.idempotency, 202, response);
        return row;
      });
      deps.relay.kick([outbox]);
      await deps.audit({ kind: 'email_sent', actor: req.caller, subject: { email_id: id } });
      req.log.info({ emailId: id, recipients: to.length + cc.length + bcc.length, attachments: attachments.length }, 'email queued');
      return reply.code(202).send(response);
    },
  );

  app.get(
    '/emails',
    {
      schema: {
        tags: ['emails'],
        operationId: 'listEmails',
        summary: 'Emails, the newest first',
        querystring: PageQuery,
        response: { 200: EmailPage },
      },
    },
    async (req) => {
      const { rows, next_cursor } = await pageOf(req.query, (page) => listEmails(db.db, page), createdKey);
      const names = await senderNames(db.db, rows);
      return { emails: rows.map((e) => toApiEmail(e, names)), next_cursor };
    },
  );

  app.get(
    '/emails/:id',
    {
      schema: {
        tags: ['emails'],
        operationId: 'getEmail',
        summary: 'An email with its delivery timeline',
        params: IdParams,
        response: { 200: EmailWithTimeline },
      },
      config: { openapi: { errors: ['NOT_FOUND'] } },
    },
    async (req) => {
      if (!isUuid(req.params.id)) {
        throw new HttpError('INVALID_REQUEST', 'params.id must be an email id (a UUID)', {
          details: [{ field: 'params.id', message: 'must be an email id (a UUID)' }],
        });
      }
      const id = req.params.id.toLowerCase();
      const e = await findEmail(db.db, id);
      if (!e) throw new HttpError('NOT_FOUND', 'no such email');
      const timeline = await findTimeline(db.db, { emailId: id });
      const names = await senderNames(db.db, [e, ...timeline]);
      return { email: toApiEmail(e, names), timeline: timeline.map((t) => toTimelineEntry(t, names)) };
    },
  );
}

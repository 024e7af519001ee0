import type { Insertable, Selectable } from 'kysely';
import { sql } from 'kysely';
import type { Executor } from '../client.js';
import type { EmailAttachments, Emails } from '../generated.js';
import type { Keyset } from './messages.js';

export type EmailRow = Selectable<Emails>;
export type NewEmail = Insertable<Emails>;
export type EmailAttachmentRow = Selectable<EmailAttachments>;
export type NewEmailAttachment = Insertable<EmailAttachments>;

export async function insertEmail(ex: Executor, e: NewEmail): Promise<EmailRow> {
  return ex.insertInto('emails').values(e).returningAll().executeTakeFirstOrThrow();
}

export async function findEmail(ex: Executor, id: string): Promise<EmailRow | undefined> {
  return ex.selectFrom('emails').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function insertEmailAttachments(ex: Executor, rows: NewEmailAttachment[]): Promise<void> {
  if (rows.length === 0) return;
  await ex.insertInto('email_attachments').values(rows).execute();
}

export async function findEmailAttachments(ex: Executor, emailId: string): Promise<EmailAttachmentRow[]> {
  return ex.selectFrom('email_attachments').selectAll().where('email_id', '=', emailId).orderBy('position').execute();
}

/** Attachment content is kept only until the email is sent (or its retention passes). */
export async function deleteEmailAttachments(ex: Executor, emailIds: string | readonly string[]): Promise<number> {
  const ids = typeof emailIds === 'string' ? [emailIds] : [...emailIds];
  if (ids.length === 0) return 0;
  const r = await ex.deleteFrom('email_attachments').where('email_id', 'in', ids).executeTakeFirst();
  return Number(r.numDeletedRows);
}

/** Emails newest first, strictly before the keyset (GET /api/emails). */
export async function listEmails(ex: Executor, opts: { limit: number; before?: Keyset }): Promise<EmailRow[]> {
  let q = ex.selectFrom('emails').selectAll();
  if (opts.before) {
    const b = opts.before;
    q = q.where((eb) => eb.or([eb('created_at', '<', b.at), eb.and([eb('created_at', '=', b.at), eb('id', '<', b.id)])]));
  }
  return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(opts.limit).execute();
}

/** The email a SendGrid event's `sg_message_id` belongs to: it starts with the send's X-Message-Id. */
/** The email ids of these provider message ids, in one statement (a webhook's events at once). */
export async function findEmailIdsByProviderMessageIds(ex: Executor, providerMessageIds: readonly string[]): Promise<Map<string, string>> {
  if (providerMessageIds.length === 0) return new Map();
  const rows = await ex
    .selectFrom('emails')
    .select(['id', 'provider_message_id'])
    .where('provider_message_id', 'in', [...new Set(providerMessageIds)])
    .execute();
  return new Map(rows.map((r) => [r.provider_message_id as string, r.id]));
}

/**
 * Attachment content past its retention (emails that were never sent: failed, dead-lettered),
 * in bounded batches. Sent emails lose theirs at once (deleteEmailAttachments).
 */
export async function purgeEmailAttachments(ex: Executor, olderThan: Date, batch = 100): Promise<number> {
  const r = await sql`
    WITH doomed AS (SELECT email_id, position FROM email_attachments WHERE created_at < ${olderThan} LIMIT ${batch})
    DELETE FROM email_attachments a USING doomed d WHERE a.email_id = d.email_id AND a.position = d.position`.execute(ex);
  return Number(r.numAffectedRows ?? 0n);
}

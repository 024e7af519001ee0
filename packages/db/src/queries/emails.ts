import type { Insertable, Selectable } from 'kysely';
import type { Executor } from '../client.js';
import type { EmailAttachments, Emails } from '../generated.js';

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
export async function deleteEmailAttachments(ex: Executor, emailId: string): Promise<number> {
  const r = await ex.deleteFrom('email_attachments').where('email_id', '=', emailId).executeTakeFirst();
  return Number(r.numDeletedRows);
}

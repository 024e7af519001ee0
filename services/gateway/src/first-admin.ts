/**
 * The first admin (issue 18; `./setup.sh`, README "First admin"): when the database has no admin,
 * either one with the name, email and password typed at setup's prompts (the password rules of
 * passwords.ts, stored as its scrypt hash), or, with `--yes` / no terminal, a pending one with a
 * one-time link (an invite, `PUBLIC_URL/invite#<secret>`, like POST /api/users answers) where the
 * person sets their name and password. Never a second admin: an advisory lock serialises
 * concurrent setups and an existing admin ends it; a first admin who never used their link gets a
 * new one (the old one stops working).
 */
import { expireUserInvites, insertAuditEvent, insertInvite, insertUser, lockAdmins, type Db, type Executor } from '@hatch/db';
import { isEmailAddress, type AuditKind } from '@hatch/contracts';
import { randomSecret, sha256 } from './auth.js';
import { HttpError } from './errors.js';
import { checkPassword, hashPassword } from './passwords.js';

export interface FirstAdminInput {
  name: string;
  email: string;
  password: string;
}

export type FirstAdminResult =
  | { outcome: 'exists'; email: string }
  | { outcome: 'created'; email: string }
  | { outcome: 'link'; email: string; link: string; expiresAt: Date };

/** Checks typed answers with the backend's rules; the first problem as "field: reason", or undefined. */
export function firstAdminProblem(input: FirstAdminInput): string | undefined {
  const name = input.name.trim();
  if (name.length < 1 || name.length > 200) return 'name must be 1 to 200 characters';
  if (!isEmailAddress(input.email.trim())) return 'email must be an email address';
  try {
    checkPassword(input.password, input.email);
  } catch (err) {
    if (err instanceof HttpError) return err.message;
    throw err;
  }
  return undefined;
}

export async function ensureFirstAdmin(
  db: Db,
  opts: { input?: FirstAdminInput; linkEmail?: string; publicUrl: string; inviteMs: number; now?: Date },
): Promise<FirstAdminResult> {
  const now = opts.now ?? new Date();
  const hash = opts.input ? await hashPassword(opts.input.password) : null;
  return db.db.transaction().execute(async (tx) => {
    const admins = await lockAdmins(tx);
    const first = admins[0];
    if (first && (first.password_hash !== null || opts.input || admins.length > 1)) return { outcome: 'exists', email: first.email };
    if (first) return { outcome: 'link', email: first.email, ...(await issueLink(tx, first.id, opts, now)) };
    if (opts.input && hash) {
      const user = await insertUser(tx, {
        name: opts.input.name.trim(),
        email: opts.input.email.trim(),
        role: 'admin',
        password_hash: hash,
      });
      await audit(tx, 'user_created', user.id);
      return { outcome: 'created', email: user.email };
    }
    const email = opts.linkEmail ?? 'admin@localhost';
    const user = await insertUser(tx, { name: 'Admin', email, role: 'admin', password_hash: null });
    await audit(tx, 'user_invited', user.id);
    return { outcome: 'link', email, ...(await issueLink(tx, user.id, opts, now)) };
  });
}

async function issueLink(tx: Executor, userId: string, opts: { publicUrl: string; inviteMs: number }, now: Date) {
  const secret = randomSecret();
  const expiresAt = new Date(now.getTime() + opts.inviteMs);
  await expireUserInvites(tx, userId, now);
  await insertInvite(tx, { token_hash: sha256(secret), user_id: userId, purpose: 'invite', created_by: null, expires_at: expiresAt });
  return { link: `${opts.publicUrl.replace(/\/+$/, '')}/invite#${secret}`, expiresAt };
}

const audit = (tx: Executor, kind: AuditKind, userId: string) =>
  insertAuditEvent(tx, { kind, actor_id: null, actor_label: 'setup', subject: { user_id: userId }, address: null });

/**
 * Audit rows (issue 18): who did what to which ids, never a body, a password or a token. The
 * write is awaited (the row exists when the answer goes out) but never fails the request: an
 * audit row that cannot be written is logged at warn with its kind.
 */
import { insertAuditEvent, type Db, type NewAuditEvent } from '@hatch/db';
import type { AuditKind } from '@hatch/contracts';
import type { Logger } from '@hatch/log';
import type { Caller } from './auth.js';

export interface AuditEntry {
  kind: AuditKind;
  /** who acted; undefined for an unauthenticated request (a failed sign-in, an invite accepted) */
  actor?: Caller;
  /** overrides the actor's label: the email a failed sign-in tried */
  actorLabel?: string;
  actorId?: string | null;
  subject?: {
    user_id?: string | null;
    session_id?: string;
    token_id?: string;
    message_id?: string;
    conversation_id?: string;
    email_id?: string;
  };
  address?: string;
}

export type Audit = (e: AuditEntry) => Promise<void>;

/** The row an entry becomes (also written by the send batch's own statement: accept-message.ts). */
export function auditRow(e: AuditEntry): NewAuditEvent & { actor_id: string | null; actor_label: string | null } {
  return {
    kind: e.kind,
    actor_id: e.actorId !== undefined ? e.actorId : (e.actor?.userId ?? null),
    actor_label: (e.actorLabel ?? (e.actor ? (e.actor.email ?? e.actor.name) : null))?.slice(0, 320) ?? null,
    subject: e.subject ?? {},
    address: e.address ?? null,
  };
}

export function createAudit(deps: { db: Db; log: Logger }): Audit {
  return async (e) => {
    try {
      await insertAuditEvent(deps.db.db, auditRow(e));
    } catch (err) {
      deps.log.warn({ err: { message: (err as Error).message }, kind: e.kind }, 'audit row not written');
    }
  };
}

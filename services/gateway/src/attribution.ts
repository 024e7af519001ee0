/**
 * Who sent what (issue 18, docs/api.md "Who sent it"): the `sent_by` / `sent_by_source` columns
 * a caller's send, email, retry and timeline entry are written with, and the `sent_by` the API
 * answers with: `{id, name}` for a person, `{id: null, name: "API"}` for the bootstrap
 * HATCH_API_TOKEN, null where no person acted (a provider, an inbound message, a worker, the
 * outbox) and on rows from before accounts.
 */
import type { SentBy } from '@hatch/contracts';
import { findUserNames, type Attribution, type Executor } from '@hatch/db';
import { BOOTSTRAP_NAME, type Caller } from './auth.js';

/** What a caller's writes record: a person's id, or the bootstrap token (every /api route has a caller). */
export function attributionOf(caller: Caller | undefined): Attribution {
  return caller?.userId ? { sent_by: caller.userId, sent_by_source: 'user' } : { sent_by: null, sent_by_source: 'api-token' };
}

interface Attributed {
  sent_by: string | null;
  sent_by_source: string | null;
}

export type SenderNames = ReadonlyMap<string, string>;

/** The names of the people who sent these rows: one query for a whole page, none when no person did. */
export function senderNames(ex: Executor, rows: readonly Attributed[]): Promise<SenderNames> {
  return findUserNames(
    ex,
    rows.flatMap((r) => (r.sent_by === null ? [] : [r.sent_by])),
  );
}

export function sentByOf(row: Attributed, names: SenderNames): SentBy | null {
  if (row.sent_by !== null) return { id: row.sent_by, name: names.get(row.sent_by) ?? '' };
  if (row.sent_by_source === 'api-token') return { id: null, name: BOOTSTRAP_NAME };
  return null;
}

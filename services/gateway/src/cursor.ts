/** Opaque keyset cursors: base64url of [ISO time, id]. A client only passes back next_cursor. */
import { isUuid, type PageQuery } from '@hatch/contracts';
import type { Keyset } from '@hatch/db';
import { HttpError } from './errors.js';

export function encodeCursor(k: Keyset): string {
  return Buffer.from(JSON.stringify([k.at.toISOString(), k.id])).toString('base64url');
}

export function decodeCursor(raw: string | undefined): Keyset | undefined {
  if (raw === undefined) return undefined;
  try {
    const v = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string' && isUuid(v[1])) {
      const at = new Date(v[0]);
      if (!Number.isNaN(at.getTime())) return { at, id: v[1] };
    }
  } catch {
    // fall through: not one of ours
  }
  throw new HttpError('INVALID_REQUEST', 'before is not a valid cursor (pass next_cursor from the previous page)', {
    details: [{ field: 'querystring.before', message: 'is not a valid cursor' }],
  });
}

/**
 * One page of a keyset list, the newest first: the cursor is decoded (a bad one is a 400 before
 * anything is read), one row more than the page is asked for, and `next_cursor` names the page's
 * last row (`keyOf`) only when that extra row says another page follows.
 */
export async function pageOf<Row>(
  query: PageQuery,
  list: (page: { limit: number; before: Keyset | undefined }) => Promise<Row[]>,
  keyOf: (row: Row) => Keyset,
): Promise<{ rows: Row[]; next_cursor: string | null }> {
  const limit = query.limit ?? 50;
  const before = decodeCursor(query.before);
  const rows = await list({ limit: limit + 1, before });
  const page = rows.slice(0, limit);
  const tail = page[page.length - 1];
  return { rows: page, next_cursor: rows.length > limit && tail ? encodeCursor(keyOf(tail)) : null };
}

/** The key of a row listed by creation time (messages, emails). */
export const createdKey = (r: { created_at: Date; id: string }): Keyset => ({ at: r.created_at, id: r.id });

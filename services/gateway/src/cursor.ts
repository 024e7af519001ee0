/** Opaque keyset cursors: base64url of [ISO time, id]. A client only passes back next_cursor. */
import { isUuid } from '@hatch/contracts';
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

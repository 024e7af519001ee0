/**
 * newRecordId(): the id of a new message or email, a UUIDv7 (RFC 9562): 48 bits of Unix
 * milliseconds, then random bits. Ids taken later sort later, so each insert lands at the right
 * edge of the primary key and of the indexes that lead with the id (timeline, outbox dedupe id)
 * instead of on a random leaf page. With random (v4) ids every send dirtied ~4 random index
 * pages, each written whole to the WAL after a checkpoint (full-page writes): ~20 KB of WAL per
 * send instead of ~5 KB (bench/README.md, P1). Node-only (node:crypto).
 */
import { randomBytes } from 'node:crypto';

export function newRecordId(now: number = Date.now()): string {
  const b = randomBytes(16);
  b.writeUIntBE(now, 0, 6);
  b[6] = 0x70 | ((b[6] as number) & 0x0f); // version 7
  b[8] = 0x80 | ((b[8] as number) & 0x3f); // variant 10
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

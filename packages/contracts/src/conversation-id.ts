/**
 * conversationIdFor(a, b): the same id for the same two participants in either order
 * (contract): SHA-256 of the conversation key, first 32 hex digits as a UUID. Node-only
 * (node:crypto), exported from `@hatch/contracts/node` so browser bundles never pull it in.
 */
import { createHash } from 'node:crypto';
import { conversationKey, hexToUuid } from './identity.js';

export function conversationIdFor(a: string, b: string): string {
  return hexToUuid(createHash('sha256').update(conversationKey(a, b), 'utf8').digest('hex'));
}

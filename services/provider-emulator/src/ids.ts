/**
 * Identifiers in the providers' own formats, so code that parses or stores them (column widths,
 * `^SM[0-9a-f]{32}$` checks, the `<X-Message-Id>.filter…` prefix match) is exercised for real.
 */
import { randomUUID } from 'node:crypto';

// randomUUID draws from an internal pool of random bytes; randomBytes(16) per id was ~13 % of
// the CPU under load. A v4 UUID has 122 random bits: plenty for ids that only need to be unique.
function random128Hex(): string {
  return randomUUID().replace(/-/g, '');
}

/** Twilio SIDs: a two-letter type prefix + 32 lowercase hex digits (SM message, RQ request…). */
export function twilioSid(prefix: 'SM' | 'MM' | 'RQ' | 'AC' | 'MG'): string {
  return prefix + random128Hex();
}

/** SendGrid's `X-Message-Id`: 22 characters of URL-safe base64. */
export function sendgridMessageId(): string {
  return Buffer.from(random128Hex(), 'hex').toString('base64url');
}

/**
 * `sg_message_id` of an event: SendGrid prefixes it with the X-Message-Id of the send and adds
 * a per-recipient suffix from the filter server that processed it.
 */
export function sendgridEventMessageId(messageId: string, recipientIndex: number): string {
  return `${messageId}.filterdrecv-emulator-1-${Date.now().toString(16).toUpperCase()}-${recipientIndex}.0`;
}

/** `sg_event_id`: unique per event (receivers dedupe on it). */
export function sendgridEventId(): string {
  return Buffer.from(random128Hex() + random128Hex().slice(0, 4), 'hex').toString('base64url');
}

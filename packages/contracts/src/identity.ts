/**
 * Participants: E.164 numbers and named contacts, and the validation rules the contract sets.
 * Pure functions (no Node APIs) so the web UI uses the same ones.
 */

/** E.164: "+" then 8-15 digits, no leading zero (contract: `+` and 8-15 digits). */
export const E164_PATTERN = '^\\+[1-9][0-9]{7,14}$';
const E164 = new RegExp(E164_PATTERN);

// C0/C1 controls, DEL, and the Unicode line/paragraph separators that break headers and logs.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

export const NAME_MAX = 100;

export function isE164(value: string): boolean {
  return E164.test(value);
}

/** A `to` beginning with "+" is a phone number attempt; anything else is a contact name. */
export function looksLikePhoneNumber(value: string): boolean {
  return value.trim().startsWith('+');
}

export function hasControlCharacters(value: string): boolean {
  return CONTROL.test(value);
}

export type ParticipantCheck = { ok: true; value: string; kind: 'phone' | 'name' } | { ok: false; reason: string };

/** Validates a `to` / `from` participant and returns its stored form (numbers as given, names trimmed). */
export function checkParticipant(raw: string): ParticipantCheck {
  if (hasControlCharacters(raw)) return { ok: false, reason: 'must not contain control characters or line breaks' };
  const value = raw.trim();
  if (value.length === 0) return { ok: false, reason: 'must not be empty' };
  if (value.startsWith('+')) {
    if (!isE164(value)) return { ok: false, reason: 'must be an E.164 phone number: "+" then 8 to 15 digits, no spaces' };
    return { ok: true, value, kind: 'phone' };
  }
  if ([...value].length > NAME_MAX) return { ok: false, reason: `must be at most ${NAME_MAX} characters` };
  return { ok: true, value, kind: 'name' };
}

/** Normal form of a participant for conversation identity (contract): numbers as they are; names trimmed, NFC, lower-cased. */
export function normaliseParticipant(value: string): string {
  const v = value.trim();
  if (isE164(v)) return v;
  return v.normalize('NFC').toLowerCase();
}

/** The string hashed into a conversation id: both normalised participants, sorted, joined with "|". */
export function conversationKey(a: string, b: string): string {
  return [normaliseParticipant(a), normaliseParticipant(b)].sort().join('|');
}

/** Formats the first 32 hex digits of a digest as a UUID (8-4-4-4-12). */
export function hexToUuid(hex: string): string {
  const h = hex.slice(0, 32).toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(h)) throw new Error('need at least 32 hex digits');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
const UUID = new RegExp(UUID_PATTERN);
export function isUuid(value: string): boolean {
  return UUID.test(value);
}

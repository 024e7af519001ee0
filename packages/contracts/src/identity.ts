/**
 * Participants: E.164 numbers and named contacts, and the validation rules the contract sets.
 * Pure functions (no Node APIs) so the web UI uses the same ones.
 */

/** E.164: "+" then 8-15 digits, no leading zero (contract: `+` and 8-15 digits). */
export const E164_PATTERN = '^\\+[1-9][0-9]{7,14}$';
const E164 = new RegExp(E164_PATTERN);

// C0/C1 controls, DEL, and the Unicode line/paragraph separators that break headers and logs.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

export const NAME_MAX = 100;

export function isE164(value: string): boolean {
  return E164.test(value);
}

// Digits (of any script: fullwidth or Arabic-Indic digits typed on a phone keyboard too), and
// the punctuation people write numbers with: spaces, dashes, dots, parentheses.
const PHONE_CHARS = /^[\p{Nd}\s\p{Pd}.()]+$/u;
const DIGIT = /\p{Nd}/u;

/**
 * A phone number attempt: a value beginning with "+", or made only of digits and phone
 * punctuation with at least one digit and no letter of any script (`4155550100`,
 * `(415) 555-0100`). Issue 14: typing a US number without "+1" used to create a chat with a
 * contact named "4155550100" and send nothing. Anything else is a contact name, digits among
 * letters included ("Room 101", "Agent 007", "张伟 2").
 */
export function looksLikePhoneNumber(value: string): boolean {
  const v = value.trim();
  if (v.startsWith('+')) return true;
  return PHONE_CHARS.test(v) && DIGIT.test(v);
}

/** The fix to suggest for a phone number attempt that is not E.164 (shown by the API and the composer). */
function e164Hint(value: string): string {
  // "+1 (415) 555-0100": the number is there, only the punctuation is in the way.
  const compact = value.replace(/[\s\p{Pd}.()]/gu, '');
  if (value.startsWith('+') && isE164(compact)) return `use E.164 without spaces or punctuation: ${compact}`;
  return 'use E.164 ("+", the country code, then the number, digits only), e.g. +14155550100';
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
  if (looksLikePhoneNumber(value)) {
    if (!isE164(value)) return { ok: false, reason: `is not an E.164 phone number: ${e164Hint(value)}` };
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

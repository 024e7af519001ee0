/**
 * SMS segment counting, the way Twilio counts (docs/reliability.md#twilio): the one definition used by
 * the gateway (stored `segments`), the web UI's composer counter and the provider emulator's
 * `num_segments`, so the three can never disagree.
 *
 * - GSM-7 (3GPP TS 23.038): 160 septets in one segment, 153 per segment once split (the other 7
 *   septets carry the concatenation header). Characters of the extension table take two septets
 *   (ESC + char), and an escape pair is never split across segments: the handset would show a
 *   stray ESC and a wrong character.
 * - Anything outside GSM-7 makes the whole message UCS-2: 70 UTF-16 code units in one segment,
 *   67 once split. A character outside the BMP (most emoji) is a surrogate pair and is never
 *   split either; combining marks and ZWJ sequences are separate code points, each counted.
 * - An empty body is one segment: Twilio bills and reports `num_segments: 1` for it.
 *
 * Pure TypeScript with no dependencies: the browser bundle imports it too.
 */
export type SmsEncoding = 'GSM-7' | 'UCS-2';

export interface SmsSegmentInfo {
  encoding: SmsEncoding;
  segments: number;
  /** septets (GSM-7) or UTF-16 code units (UCS-2) of the whole body */
  units: number;
  /** capacity of one segment at this length: 160 / 153 (GSM-7) or 70 / 67 (UCS-2) */
  perSegment: number;
  /** units left in the last segment before another one starts */
  remainingInSegment: number;
}

export const GSM7_SINGLE_SEGMENT = 160;
export const GSM7_MULTI_SEGMENT = 153;
export const UCS2_SINGLE_SEGMENT = 70;
export const UCS2_MULTI_SEGMENT = 67;

// GSM 03.38 default alphabet, in table order (0x00–0x7F) without ESC (0x1B), which is not a
// character of its own. `Ç` is the capital, as in the standard's table.
const GSM7_BASIC_CHARS =
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?' + '¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
// Default extension table: each is sent as ESC + char, two septets. \f is form feed (page break).
const GSM7_EXTENSION_CHARS = '\f^{}\\[~]|€';

const BASIC = new Set(GSM7_BASIC_CHARS);
const EXTENSION = new Set(GSM7_EXTENSION_CHARS);

/** True when every character of `body` is in the GSM-7 default alphabet or its extension table. */
export function isGsm7(body: string): boolean {
  for (const ch of body) if (!BASIC.has(ch) && !EXTENSION.has(ch)) return false;
  return true;
}

/** Units one character takes: septets in GSM-7, UTF-16 code units (1 or 2) in UCS-2. */
function unitsOf(ch: string, encoding: SmsEncoding): number {
  if (encoding === 'GSM-7') return EXTENSION.has(ch) ? 2 : 1;
  return ch.length;
}

export function countSmsSegments(body: string): SmsSegmentInfo {
  const encoding: SmsEncoding = isGsm7(body) ? 'GSM-7' : 'UCS-2';
  const single = encoding === 'GSM-7' ? GSM7_SINGLE_SEGMENT : UCS2_SINGLE_SEGMENT;
  const multi = encoding === 'GSM-7' ? GSM7_MULTI_SEGMENT : UCS2_MULTI_SEGMENT;

  // Walk code points (for…of), not UTF-16 units, so a surrogate pair is one indivisible step.
  let total = 0;
  for (const ch of body) total += unitsOf(ch, encoding);
  if (total <= single) {
    return { encoding, segments: 1, units: total, perSegment: single, remainingInSegment: single - total };
  }

  // Split: a character (escape pair or surrogate pair) that does not fit whole in the current
  // segment starts the next one, leaving the last unit of the current segment unused.
  let segments = 1;
  let used = 0;
  for (const ch of body) {
    const u = unitsOf(ch, encoding);
    if (used + u > multi) {
      segments++;
      used = 0;
    }
    used += u;
  }
  return { encoding, segments, units: total, perSegment: multi, remainingInSegment: multi - used };
}

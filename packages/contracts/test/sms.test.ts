import t from 'tap';
import { countSmsSegments, isGsm7 } from '../src/sms.js';

const EMOJI = '😀'; // U+1F600: one code point, a UTF-16 surrogate pair
const FAMILY = '👨\u200d👩\u200d👧'; // man ZWJ woman ZWJ girl: 3 pairs + 2 joiners

t.test('reliability T13: segment counts of the reference bodies', async (t) => {
  const rows: Array<[string, string, number, string]> = [
    ['160 GSM-7 characters', 'a'.repeat(160), 1, 'GSM-7'],
    ['161 GSM-7 characters', 'a'.repeat(161), 2, 'GSM-7'],
    ['70 characters with one ą (not GSM-7)', 'ą' + 'a'.repeat(69), 1, 'UCS-2'],
    ['71 UCS-2 characters', 'ą' + 'a'.repeat(70), 2, 'UCS-2'],
    ['69 characters + one emoji = 71 units', 'a'.repeat(69) + EMOJI, 2, 'UCS-2'],
  ];
  for (const [name, body, segments, encoding] of rows) {
    const info = countSmsSegments(body);
    t.equal(info.segments, segments, `${name}: ${segments} segment(s)`);
    t.equal(info.encoding, encoding, `${name}: ${encoding}`);
  }
});

t.test('GSM-7 single and multi-part boundaries are 160 and 153 septets', async (t) => {
  t.match(countSmsSegments('a'.repeat(160)), { segments: 1, units: 160, perSegment: 160, remainingInSegment: 0 });
  t.match(countSmsSegments('a'.repeat(161)), { segments: 2, units: 161, perSegment: 153, remainingInSegment: 145 });
  t.equal(countSmsSegments('a'.repeat(306)).segments, 2, '2 × 153');
  t.equal(countSmsSegments('a'.repeat(307)).segments, 3);
  t.equal(countSmsSegments('a'.repeat(1600)).segments, 11, 'the 1,600-character maximum');
  t.match(countSmsSegments('hello'), { segments: 1, units: 5, remainingInSegment: 155 });
});

t.test('an empty body is one segment, as Twilio reports it', async (t) => {
  t.match(countSmsSegments(''), { encoding: 'GSM-7', segments: 1, units: 0, perSegment: 160, remainingInSegment: 160 });
});

t.test('extension characters take two septets each', async (t) => {
  for (const ch of ['^', '{', '}', '\\', '[', '~', ']', '|', '€', '\f']) {
    t.match(countSmsSegments(ch), { encoding: 'GSM-7', units: 2 }, `${JSON.stringify(ch)} is 2 septets`);
  }
  t.match(countSmsSegments('€'.repeat(80)), { segments: 1, units: 160 }, '80 € fill one segment exactly');
  t.match(countSmsSegments('€'.repeat(81)), { segments: 2, units: 162 });
  t.match(countSmsSegments('Price: {10 €} [net] ~ok|'), { encoding: 'GSM-7', units: 31 });
});

t.test('a GSM-7 escape pair is never split across segments', async (t) => {
  // 152 + 2 + 152 = 306 septets would fit 2 × 153 if the pair could straddle the boundary;
  // it cannot, so "{" opens segment 2 and the last "a" spills into segment 3.
  const body = 'a'.repeat(152) + '{' + 'a'.repeat(152);
  t.match(countSmsSegments(body), { encoding: 'GSM-7', units: 306, segments: 3, perSegment: 153, remainingInSegment: 152 });
  // 76 € = 152 septets: the 77th € does not fit in 153 and starts segment 2.
  t.match(countSmsSegments('€'.repeat(77) + 'a'.repeat(100)), { segments: 2, remainingInSegment: 153 - 102 });
});

t.test('UCS-2 counts UTF-16 code units: 70 single, 67 per part', async (t) => {
  t.match(countSmsSegments('ą'.repeat(70)), { encoding: 'UCS-2', segments: 1, units: 70, perSegment: 70, remainingInSegment: 0 });
  t.match(countSmsSegments('ą'.repeat(71)), { segments: 2, units: 71, perSegment: 67, remainingInSegment: 63 });
  t.equal(countSmsSegments('ą'.repeat(134)).segments, 2);
  t.equal(countSmsSegments('ą'.repeat(135)).segments, 3);
  t.match(countSmsSegments(EMOJI.repeat(35)), { segments: 1, units: 70 }, '35 emoji fill one segment');
  t.match(countSmsSegments(EMOJI.repeat(36)), { segments: 2, units: 72 });
});

t.test('a surrogate pair is never split across segments', async (t) => {
  // 66 + 2 + 66 = 134 units would fit 2 × 67 if the emoji could straddle the boundary.
  const body = 'ą'.repeat(66) + EMOJI + 'ą'.repeat(66);
  t.match(countSmsSegments(body), { units: 134, segments: 3, remainingInSegment: 66 });
});

t.test('ZWJ sequences, combining marks and RTL text count every code unit', async (t) => {
  t.match(countSmsSegments(FAMILY), { encoding: 'UCS-2', units: 8, segments: 1 });
  t.match(countSmsSegments('שלום'), { encoding: 'UCS-2', units: 4 });
  // No normalisation: precomposed é is GSM-7, e + combining acute (U+0301) is not.
  t.match(countSmsSegments('caf\u00e9'), { encoding: 'GSM-7', units: 4 });
  t.match(countSmsSegments('cafe\u0301'), { encoding: 'UCS-2', units: 5 });
  t.match(countSmsSegments('👍🏽'), { encoding: 'UCS-2', units: 4 }, 'emoji + skin-tone modifier are two pairs');
});

t.test('one non-GSM character switches the whole message, extension characters included', async (t) => {
  // In UCS-2, € is a single unit: the 2-septet rule only applies to GSM-7.
  t.match(countSmsSegments('€€€ą'), { encoding: 'UCS-2', units: 4 });
});

t.test('isGsm7 knows the default alphabet and its extension table', async (t) => {
  t.ok(isGsm7('Hello, World! @£$¥ èéùìò ÄÖÑÜ äöñüà ΔΦΓΛΩΠΨΣΘΞ ¡¿§'));
  t.ok(isGsm7('line\nbreak\rreturn'));
  t.ok(isGsm7('{[~]}|^\\€\f'));
  t.ok(isGsm7(''));
  t.notOk(isGsm7('ą'));
  t.notOk(isGsm7('ç'), 'only the capital Ç is in the table');
  t.notOk(isGsm7('\t'), 'tab is not GSM-7');
  t.notOk(isGsm7('`'));
  t.notOk(isGsm7(EMOJI));
  t.notOk(isGsm7('\u001b'), 'a raw ESC is not a character of its own');
});

import t from 'tap';
import { checkParticipant, conversationKey, isE164, isUuid, looksLikePhoneNumber, natsNames, normaliseParticipant } from '../src/index.js';
import { conversationIdFor, newRecordId } from '../src/node.js';
import { createHash } from 'node:crypto';

t.test('E.164 validation: "+" then 8-15 digits, no spaces', async (t) => {
  for (const ok of ['+15551234567', '+447700900123', '+12345678', '+123456789012345']) t.ok(isE164(ok), ok);
  for (const bad of ['12345', '+1 555 0100', '+1234567', '+1234567890123456', '+0123456789', '15551234567', '+1555123456a'])
    t.notOk(isE164(bad), bad);
});

t.test('participants: names trimmed, 1-100 chars, no control characters; "+" means a phone number', async (t) => {
  t.same(checkParticipant('  Alice  '), { ok: true, value: 'Alice', kind: 'name' });
  t.same(checkParticipant('+15551234567'), { ok: true, value: '+15551234567', kind: 'phone' });
  t.match(checkParticipant('+1 555'), { ok: false, reason: /E\.164/ });
  t.match(checkParticipant('   '), { ok: false, reason: /empty/ });
  t.match(checkParticipant('a'.repeat(101)), { ok: false, reason: /100/ });
  t.ok(checkParticipant('é'.repeat(100)).ok, '100 characters, not bytes');
  t.match(checkParticipant('Bob\r\nBcc: x'), { ok: false, reason: /control/ });
  t.match(checkParticipant('Bob\u0000'), { ok: false, reason: /control/ });
});

t.test(
  'a participant made only of digits and phone punctuation is a phone number attempt: not E.164 is refused with a hint (issue 14)',
  async (t) => {
    const notE164 = [
      '4155550100',
      '(415) 555-0100',
      '415.555.0100',
      '415-555-0100',
      ' 0044 7700 900123 ',
      '1',
      '007',
      '１２３４５',
      '٤١٥٥٥٥٠١٠٠',
      '415\u2013555\u20130100',
      '+1 (415) 555-0100',
      '+',
      '+44 7700',
    ];
    for (const to of notE164) {
      t.ok(looksLikePhoneNumber(to), `${JSON.stringify(to)} looks like a phone number`);
      const r = checkParticipant(to);
      t.match(r, { ok: false, reason: /E\.164/ }, `${JSON.stringify(to)} is refused`);
      if (!r.ok) t.match(r.reason, /\+1/, `${JSON.stringify(to)}: the reason shows an E.164 example`);
    }
    t.match(checkParticipant('4155550100'), { ok: false, reason: /e\.g\. \+14155550100/ });
    t.match(
      checkParticipant('+1 (415) 555-0100'),
      { ok: false, reason: /without spaces or punctuation: \+14155550100$/ },
      'the number itself is suggested when only punctuation is wrong',
    );
    const names = ['Room 101', 'Agent 007', '张伟 2', 'R2-D2', '4155550100a', 'ext. 12', '#42', '1/2', '()', '-', 'Ωmega 3'];
    for (const to of names) {
      t.notOk(looksLikePhoneNumber(to), `${JSON.stringify(to)} is a name`);
      t.same(checkParticipant(to), { ok: true, value: to, kind: 'name' }, `${JSON.stringify(to)} stays a chat name`);
    }
    t.same(checkParticipant(' +14155550100 '), { ok: true, value: '+14155550100', kind: 'phone' });
  },
);

t.test('conversation id is the same in either order and follows the contract recipe', async (t) => {
  const a = conversationIdFor('+15551234567', 'Alice');
  t.equal(a, conversationIdFor('  alice ', '+15551234567'));
  t.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  const hex = createHash('sha256').update('+15551234567|alice').digest('hex');
  t.equal(a.replace(/-/g, ''), hex.slice(0, 32));
  t.not(conversationIdFor('+15551234567', 'Bob'), a);
});

t.test('names normalise with NFC and lower case; numbers stay as they are', async (t) => {
  t.equal(normaliseParticipant('Ze\u0301'), 'z\u00e9');
  t.equal(conversationKey('ZE\u0301', 'me'), conversationKey('zé', 'ME'));
  t.equal(normaliseParticipant('+15551234567'), '+15551234567');
});

t.test('NATS names follow the prefix: streams upper, subjects lower', async (t) => {
  const n = natsNames('T1');
  t.same(n.streams, { jobs: 'T1_JOBS', events: 'T1_EVENTS', dlq: 'T1_DLQ' });
  t.equal(n.subjects.smsJob, 't1.jobs.sms');
  t.equal(n.subjects.eventFor('messages'), 't1.events.messages');
  t.equal(natsNames().streams.jobs, 'HATCH_JOBS');
  t.throws(() => natsNames('bad prefix'));
});

t.test('newRecordId: a UUIDv7 that isUuid accepts, ordered by time, unique', async (t) => {
  const a = newRecordId(1_700_000_000_000);
  t.match(a, /^018bcfe5-6800-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'timestamp, version 7, variant 10');
  t.ok(isUuid(a));
  const ids = Array.from({ length: 1000 }, (_, i) => newRecordId(1_700_000_000_000 + i));
  t.same([...ids].sort(), ids, 'later milliseconds sort later');
  t.equal(new Set(Array.from({ length: 1000 }, () => newRecordId(1_700_000_000_000))).size, 1000, 'random within one millisecond');
});

import t from 'tap';
import { ContractError, decode, encode, SmsJob, BusChangeBatch, BusChangeEvent, unpackBatch } from '../src/index.js';

const job = { v: 1 as const, message_id: '0b7e8f5c-6f1a-4c1e-9d1e-2f0f3b2a1c00', enqueued_at: '2026-11-24T10:00:00.000Z' };

t.test('encode then decode returns the same value', async (t) => {
  t.same(decode(SmsJob, encode(SmsJob, job)), job);
});

t.test('decode of bytes that are not JSON throws ContractError', async (t) => {
  const err = t.throws(() => decode(SmsJob, new TextEncoder().encode('{nope'))) as unknown as ContractError;
  t.ok(err instanceof ContractError);
  t.match(err.message, /not valid JSON/);
});

t.test('decode names every failing path', async (t) => {
  const err = t.throws(() => decode(SmsJob, JSON.stringify({ v: 2, message_id: 'x' }))) as unknown as ContractError;
  t.ok(err instanceof ContractError);
  const paths = err.issues.map((i) => i.path);
  t.ok(paths.includes('/v'), 'names /v');
  t.ok(paths.includes('/message_id'), 'names /message_id');
  t.ok(paths.includes('/enqueued_at'), 'names the missing /enqueued_at');
});

t.test('decode refuses invalid UTF-8 instead of guessing', async (t) => {
  t.throws(() => decode(SmsJob, new Uint8Array([0x7b, 0xff, 0x7d])), ContractError);
});

t.test('encode refuses a value that breaks its own contract', async (t) => {
  t.throws(() => encode(SmsJob, { ...job, message_id: 'not-a-uuid' }), ContractError);
});

t.test('bus change events carry a decimal journal id and a typed event', async (t) => {
  const ev = {
    id: '42',
    event: {
      type: 'message_update' as const,
      conversation_id: job.message_id,
      action: 'UPDATE' as const,
      message_id: job.message_id,
      status: 'sent' as const,
      timestamp: job.enqueued_at,
    },
  };
  t.same(decode(BusChangeEvent, encode(BusChangeEvent, ev)), ev);
  t.throws(() => decode(BusChangeEvent, JSON.stringify({ ...ev, id: '-1' })), ContractError);
  t.throws(() => decode(BusChangeEvent, JSON.stringify({ ...ev, event: { ...ev.event, status: 'bogus' } })), ContractError);

  // a batch: unpacked into the same envelopes, each naming its predecessor
  const batch = { prev: '41', events: [ev, { ...ev, id: '43' }] };
  t.same(unpackBatch(decode(BusChangeBatch, encode(BusChangeBatch, batch))), [
    { ...ev, prev: '41' },
    { ...ev, id: '43', prev: '42' },
  ]);
  t.throws(() => decode(BusChangeBatch, JSON.stringify({ prev: '41', events: [] })), ContractError, 'never empty');
  t.throws(() => decode(BusChangeBatch, JSON.stringify({ events: [ev] })), ContractError, 'prev required');
});

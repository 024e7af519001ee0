import t from 'tap';
import { backoffDelay } from '../src/index.js';

t.test('backoffDelay doubles from baseMs per attempt and stops at maxMs', async (t) => {
  const policy = { baseMs: 500, maxMs: 30_000 };
  t.same(
    [0, 1, 2, 3, 4, 5, 6, 7].map((a) => backoffDelay(policy, a)),
    [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000],
  );
  t.equal(backoffDelay(policy, -3), 500, 'a negative attempt waits as the first');
  t.equal(backoffDelay(policy, 5000), 30_000, 'an attempt count past 2^1024 still waits maxMs, not Infinity');
  t.equal(backoffDelay({ baseMs: 100, maxMs: Number.POSITIVE_INFINITY }, 10), 102_400, 'no cap: plain doubling');
});

t.test('jitter spreads the wait evenly within ±jitter of it', async (t) => {
  const policy = { baseMs: 1000, maxMs: 15_000, jitter: 0.25 };
  t.equal(
    backoffDelay(policy, 2, () => 0),
    3000,
    'lowest: 75 %',
  );
  t.equal(
    backoffDelay(policy, 2, () => 0.5),
    4000,
    'middle: the wait itself',
  );
  t.equal(
    backoffDelay(policy, 2, () => 0.999_999),
    4999.998,
    'highest: just under 125 %',
  );
  t.equal(
    backoffDelay(policy, 9, () => 0),
    11_250,
    'jitter applies to the capped wait',
  );
  t.equal(
    backoffDelay({ baseMs: 1000, maxMs: 15_000 }, 2, () => 0),
    4000,
    'no jitter: random is not used',
  );
});

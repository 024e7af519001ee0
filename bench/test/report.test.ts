/**
 * The bench's report arithmetic on fixed inputs (timings themselves are never asserted anywhere).
 */
import t from 'tap';
import {
  bottleneck,
  cpuMsPerUnit,
  cpuRatio,
  fmt,
  goalMet,
  Histogram,
  histogramSumCount,
  markdownTable,
  median,
  parseArgs,
  percentile,
  ratio,
  summarize,
  windowMean,
  type Row,
} from '../lib/report.js';

t.test('median, summary and spread', async (t) => {
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 3, 2]), 2.5);
  t.ok(Number.isNaN(median([])));
  t.equal(median([5, Number.NaN, 7, 6]), 6, 'non-finite values are ignored');
  const s = summarize([90, 100, 110]);
  t.equal(s.median, 100);
  t.equal(s.min, 90);
  t.equal(s.max, 110);
  t.equal(s.spread, 0.2);
  t.same(s.runs, [90, 100, 110]);
});

t.test('ratio and percentile', async (t) => {
  t.equal(ratio(700, 1000), 0.7);
  t.ok(Number.isNaN(ratio(1, 0)), 'no ratio against a zero limit');
  t.ok(Number.isNaN(ratio(Number.NaN, 10)));
  t.equal(percentile([5, 1, 4, 2, 3], 0.5), 3);
  t.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.99), 10);
  t.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.1), 1);
});

t.test('histogram: bounded buckets, merge, percentiles', async (t) => {
  const a = new Histogram();
  for (let i = 1; i <= 99; i++) a.record(i); // 1..99 ms
  const b = new Histogram();
  b.record(500);
  b.record(1e9); // clamps into the last bucket
  a.merge(b.toJSON());
  t.equal(a.count, 101);
  t.equal(a.max, 1e9);
  t.equal(Math.round(a.percentile(0.5)), 51);
  t.ok(a.percentile(0.99) >= 500, 'p99 reaches the merged tail');
  t.ok(a.counts.length <= Histogram.BUCKETS);
});

t.test('goals and the Markdown table', async (t) => {
  const rows: Row[] = [
    {
      scenario: 'P1',
      measure: 'sends/s',
      unit: '/s',
      value: summarize([8000, 7000, 9000]),
      cpu: { unit: 'ms/send', value: summarize([0.5]), of: 'gateway + PostgreSQL' },
      raw: {
        label: 'pgbench',
        value: summarize([10000, 10000, 10000]),
        cpu: { unit: 'ms/send', value: summarize([0.2]), of: 'PostgreSQL' },
      },
      goal: { text: '≥ 70 % of raw', on: 'ratio', direction: 'atLeast', threshold: 0.7 },
    },
    {
      scenario: 'P6',
      measure: 'p99',
      unit: 'ms',
      value: summarize([60]),
      goal: { text: '≤ 50 ms', on: 'measure', direction: 'atMost', threshold: 50 },
    },
    { scenario: 'P5', measure: 'per connection', unit: 'KiB', value: summarize([12.5]) },
  ];
  t.equal(goalMet(rows[0] as Row), true);
  t.equal(goalMet(rows[1] as Row), false);
  t.equal(goalMet(rows[2] as Row), undefined);
  const md = markdownTable(rows);
  const lines = md.split('\n');
  t.equal(lines.length, 5);
  t.match(lines[0], /^\| scenario \| measure \| value \(median, min–max\) \| CPU per unit \| compared with/);
  t.equal(
    lines[2],
    '| P1 | sends/s | 8.00k /s (7.00k–9.00k) | 0.50 ms/send (gateway + PostgreSQL) | pgbench: 10.0k (10.0k–10.0k) | 0.20 ms/send (PostgreSQL) | 80 % | 2.50 × | ≥ 70 % of raw | yes |',
  );
  t.equal(lines[3], '| P6 | p99 | 60.0 ms | — | — | — | — | — | ≤ 50 ms | **no** |');
  t.equal(lines[4], '| P5 | per connection | 12.5 KiB | — | — | — | — | — | — | — |');
});

t.test('formatting and bottleneck', async (t) => {
  t.equal(fmt(1234567), '1.23M');
  t.equal(fmt(12345), '12.3k');
  t.equal(fmt(1234), '1.23k');
  t.equal(fmt(123.4), '123');
  t.equal(fmt(0.5), '0.50');
  t.equal(fmt(Number.NaN), '–');
  t.same(bottleneck({ gateway: 95, postgres: 40 }), { name: 'gateway', pct: 95 });
  t.equal(bottleneck({}), undefined);
});

t.test('arguments', async (t) => {
  t.same(parseArgs([]), { only: undefined, quick: false, runs: 3 });
  t.same(parseArgs(['--', '--only', 'p1,P3', '--quick']), { only: ['P1', 'P3'], quick: true, runs: 1 });
  t.same(parseArgs(['--only=P7', '--runs', '2', '--quick']), { only: ['P7'], quick: true, runs: 2 });
  t.throws(() => parseArgs(['--only', 'P9']), /unknown scenario/);
  t.throws(() => parseArgs(['--fast']), /unknown argument/);
});

t.test('CPU per unit of work and its ratio', async (t) => {
  // 150 % of a core over 2 s = 3,000 CPU ms; 1,000 units → 3 ms each
  t.equal(cpuMsPerUnit({ gateway: 100, postgres: 50, bench: 80 }, ['gateway', 'postgres'], 2, 1000), 3);
  t.ok(Number.isNaN(cpuMsPerUnit({ gateway: 100 }, ['gateway'], 2, 0)), 'no unit done: no figure');
  t.ok(Number.isNaN(cpuMsPerUnit({ gateway: 100 }, ['gateway', 'postgres'], 2, 10)), 'a missing process is not counted as 0');
  const row: Row = {
    scenario: 'P2',
    measure: 'x',
    unit: '/s',
    value: summarize([1]),
    cpu: { unit: 'ms/SMS', value: summarize([4]), of: 'all' },
    raw: { label: 'peer', value: summarize([1]), cpu: { unit: 'ms/SMS', value: summarize([8]), of: 'all' } },
  };
  t.equal(cpuRatio(row), 0.5);
  t.ok(
    Number.isNaN(
      cpuRatio({ ...row, raw: { label: 'peer', value: summarize([1]), cpu: { unit: 'ms/row', value: summarize([8]), of: 'all' } } }),
    ),
    'different units: no ratio',
  );
  t.ok(Number.isNaN(cpuRatio({ ...row, raw: undefined })));
});

t.test('group-commit size from two /metrics scrapes', async (t) => {
  const scrape = (sum: number, count: number) =>
    [
      '# HELP hatch_send_batch_size messages written by one accept statement (group commit)',
      '# TYPE hatch_send_batch_size histogram',
      `hatch_send_batch_size_bucket{le="1"} 3`,
      `hatch_send_batch_size_bucket{le="+Inf"} ${count}`,
      `hatch_send_batch_size_sum ${sum}`,
      `hatch_send_batch_size_count ${count}`,
      'hatch_send_batch_split_total 0',
      `other_histogram_sum 99`,
    ].join('\n');
  const before = histogramSumCount(scrape(100, 10), 'hatch_send_batch_size');
  t.same(before, { sum: 100, count: 10 });
  const after = histogramSumCount(scrape(1300, 110), 'hatch_send_batch_size');
  t.equal(windowMean(before, after), 12, '1,200 sends in 100 statements');
  t.same(
    histogramSumCount('a_sum{x="1"} 2\na_sum{x="2"} 3\na_count{x="1"} 1\na_count{x="2"} 1\n', 'a'),
    { sum: 5, count: 2 },
    'summed over labels',
  );
  t.same(
    histogramSumCount('a_sum{w="claims"} 2\na_sum{w="status"} 3\na_count{w="claims"} 1\na_count{w="status"} 4\n', 'a', 'w="status"'),
    { sum: 3, count: 4 },
    'only the label set asked for',
  );
  t.equal(histogramSumCount('a_sum{w="claims"} 2\na_count{w="claims"} 1\n', 'a', 'w="status"'), undefined, 'label absent');
  t.equal(histogramSumCount('hatch_send_batch_size_sum 5\n', 'hatch_send_batch_size'), undefined, 'no count');
  t.ok(Number.isNaN(windowMean(after, after)), 'nothing observed in the window');
  t.equal(windowMean(undefined, after), 1300 / 110, 'no scrape before: since start');
});

/**
 * The pure part of the benchmark report: medians and spreads of repeated runs, ratios against the
 * raw limits, goal checks and the Markdown table. No I/O here (bench/test/report.test.ts covers it).
 */

/** The median of the values (mean of the middle two for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  /** (max - min) / median, as a fraction (0.08 = ±4 % around the median, roughly) */
  spread: number;
  runs: number[];
}

export function summarize(values: readonly number[]): Summary {
  const v = values.filter((x) => Number.isFinite(x));
  const m = median(v);
  const min = v.length ? Math.min(...v) : Number.NaN;
  const max = v.length ? Math.max(...v) : Number.NaN;
  return { median: m, min, max, spread: v.length && m !== 0 ? (max - min) / Math.abs(m) : Number.NaN, runs: [...values] };
}

/** measure / limit; NaN when either is missing or the limit is not positive. */
export function ratio(measure: number, limit: number): number {
  if (!Number.isFinite(measure) || !Number.isFinite(limit) || limit <= 0) return Number.NaN;
  return measure / limit;
}

/** Nearest-rank percentile of unsorted samples (p in 0..1). */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const s = [...samples].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil(p * s.length)));
  return s[rank - 1] as number;
}

/**
 * A fixed-bucket latency histogram (0.1 ms buckets up to 10 s): bounded memory whatever the
 * number of samples, and mergeable across client processes.
 */
export class Histogram {
  static readonly BUCKET_MS = 0.1;
  static readonly BUCKETS = 100_000;
  readonly counts: number[] = [];
  count = 0;
  max = 0;

  record(ms: number): void {
    const i = Math.min(Histogram.BUCKETS - 1, Math.max(0, Math.floor(ms / Histogram.BUCKET_MS)));
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.count++;
    if (ms > this.max) this.max = ms;
  }

  /** sparse form for JSON: [bucket, count] pairs */
  toJSON(): { buckets: Array<[number, number]>; count: number; max: number } {
    const buckets: Array<[number, number]> = [];
    this.counts.forEach((c, i) => {
      if (c) buckets.push([i, c]);
    });
    return { buckets, count: this.count, max: this.max };
  }

  merge(other: { buckets: Array<[number, number]>; count: number; max: number }): void {
    for (const [i, c] of other.buckets) this.counts[i] = (this.counts[i] ?? 0) + c;
    this.count += other.count;
    if (other.max > this.max) this.max = other.max;
  }

  /** upper edge of the bucket holding the p-th sample (ms) */
  percentile(p: number): number {
    if (this.count === 0) return Number.NaN;
    const target = Math.max(1, Math.ceil(p * this.count));
    let acc = 0;
    for (let i = 0; i < this.counts.length; i++) {
      acc += this.counts[i] ?? 0;
      if (acc >= target) return (i + 1) * Histogram.BUCKET_MS;
    }
    return this.max;
  }
}

export type Direction = 'atLeast' | 'atMost';

export interface Goal {
  /** human text, e.g. "≥ 70 % of raw" */
  text: string;
  /** what the goal is checked on */
  on: 'ratio' | 'measure';
  direction: Direction;
  threshold: number;
}

/** CPU per unit of work (CPU ms per send, per SMS, per event, µs per SSE delivery): the headline next to a rate. */
export interface CpuPerUnit {
  /** e.g. "ms/send" */
  unit: string;
  value: Summary;
  /** which processes are summed, e.g. "gateway + PostgreSQL" */
  of: string;
}

export interface Row {
  scenario: string;
  measure: string;
  unit: string;
  value: Summary;
  cpu?: CpuPerUnit;
  /** what the value is compared with in the same run: a raw limit, a baseline or a peer (ratio = value ÷ it) */
  raw?: { label: string; value: Summary; cpu?: CpuPerUnit };
  goal?: Goal;
  /** extra remarks printed under the table (bottleneck, extrapolation, …) */
  note?: string;
}

export function goalMet(row: Row): boolean | undefined {
  const g = row.goal;
  if (!g) return undefined;
  const x = g.on === 'ratio' ? ratio(row.value.median, row.raw?.value.median ?? Number.NaN) : row.value.median;
  if (!Number.isFinite(x)) return undefined;
  return g.direction === 'atLeast' ? x >= g.threshold : x <= g.threshold;
}

/** Compact number: 12345 → "12.3k", 0.5 → "0.50", 1234567 → "1.23M". */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) return '–';
  const a = Math.abs(n);
  if (a >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  if (a >= 1000) return `${(n / 1e3).toFixed(2)}k`;
  if (a >= 100) return n.toFixed(0);
  if (a >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

export function fmtSummary(s: Summary, unit: string): string {
  const base = `${fmt(s.median)}${unit ? ` ${unit}` : ''}`;
  if (s.runs.length <= 1 || !Number.isFinite(s.spread)) return base;
  return `${base} (${fmt(s.min)}–${fmt(s.max)})`;
}

const fmtCpu = (c: CpuPerUnit | undefined) => (c ? `${fmtSummary(c.value, c.unit)} (${c.of})` : '—');

export function markdownTable(rows: readonly Row[]): string {
  const head =
    '| scenario | measure | value (median, min–max) | CPU per unit | compared with (same run) | its CPU per unit | ratio | CPU ratio | goal | met? |';
  const sep = '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |';
  const lines = rows.map((r) => {
    const rt = r.raw ? ratio(r.value.median, r.raw.value.median) : Number.NaN;
    const ct = cpuRatio(r);
    const met = goalMet(r);
    return [
      r.scenario,
      r.measure,
      fmtSummary(r.value, r.unit),
      fmtCpu(r.cpu),
      r.raw ? `${r.raw.label}: ${fmtSummary(r.raw.value, '')}` : '—',
      fmtCpu(r.raw?.cpu),
      Number.isFinite(rt) ? `${(rt * 100).toFixed(0)} %` : '—',
      Number.isFinite(ct) ? `${ct.toFixed(2)} ×` : '—',
      r.goal?.text ?? '—',
      met === undefined ? '—' : met ? 'yes' : '**no**',
    ].join(' | ');
  });
  return [head, sep, ...lines.map((l) => `| ${l} |`)].join('\n');
}

/** Hatch's CPU per unit ÷ the compared one's (below 1: Hatch spends less CPU on the same unit of work). */
export function cpuRatio(row: Row): number {
  if (!row.cpu || !row.raw?.cpu || row.cpu.unit !== row.raw.cpu.unit) return Number.NaN;
  return ratio(row.cpu.value.median, row.raw.cpu.value.median);
}

/**
 * CPU milliseconds per unit of work over a window: the CPU % of one core of each named process
 * (as `cpuWindow` reports them) summed, times the window's length, divided by the units done.
 * NaN when no unit was done or a named process is missing from the window.
 */
export function cpuMsPerUnit(cpuPct: Record<string, number>, names: readonly string[], seconds: number, units: number): number {
  if (!(units > 0) || !(seconds > 0)) return Number.NaN;
  let pct = 0;
  for (const n of names) {
    const v = cpuPct[n];
    if (v === undefined || !Number.isFinite(v)) return Number.NaN;
    pct += v;
  }
  return ((pct / 100) * seconds * 1000) / units;
}

/**
 * Sum and count of a Prometheus histogram in a text exposition (`<name>_sum`, `<name>_count`),
 * summed over its label sets, or over those holding `label` only (e.g. `writes="message_claims"`);
 * undefined when either is absent.
 */
export function histogramSumCount(text: string, name: string, label?: string): { sum: number; count: number } | undefined {
  let sum: number | undefined;
  let count: number | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    if (label !== undefined && !(m[2] ?? '').includes(label)) continue;
    const v = Number(m[3]);
    if (!Number.isFinite(v)) continue;
    if (m[1] === `${name}_sum`) sum = (sum ?? 0) + v;
    else if (m[1] === `${name}_count`) count = (count ?? 0) + v;
  }
  return sum === undefined || count === undefined ? undefined : { sum, count };
}

/** Mean of a histogram over a window, from two scrapes (before, after); NaN when nothing was observed in between. */
export function windowMean(before: { sum: number; count: number } | undefined, after: { sum: number; count: number } | undefined): number {
  if (!after) return Number.NaN;
  const b = before ?? { sum: 0, count: 0 };
  const n = after.count - b.count;
  return n > 0 ? (after.sum - b.sum) / n : Number.NaN;
}

/** The process that used the most CPU in a window, from per-process CPU percentages. */
export function bottleneck(cpu: Record<string, number>): { name: string; pct: number } | undefined {
  let best: { name: string; pct: number } | undefined;
  for (const [name, pct] of Object.entries(cpu)) if (!best || pct > best.pct) best = { name, pct };
  return best;
}

/** `--only P1,P3`, `--quick`, `--runs N`, tolerating pnpm's `--` separator. */
export interface Args {
  only: string[] | undefined;
  quick: boolean;
  runs: number;
}

export function parseArgs(argv: readonly string[]): Args {
  const out: Args = { only: undefined, quick: false, runs: 3 };
  let runsGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') continue;
    if (a === '--quick') out.quick = true;
    else if (a === '--only' || a.startsWith('--only=')) {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : (argv[++i] ?? '');
      out.only = v
        .split(',')
        .map((s) => s.trim().toUpperCase())
        .filter(Boolean);
    } else if (a === '--runs' || a.startsWith('--runs=')) {
      const v = Number(a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i]);
      if (!Number.isInteger(v) || v < 1 || v > 9) throw new Error('--runs takes 1..9');
      out.runs = v;
      runsGiven = true;
    } else throw new Error(`unknown argument ${a} (use --only P1,P3, --quick, --runs N)`);
  }
  if (out.quick && !runsGiven) out.runs = 1;
  const bad = (out.only ?? []).filter((s) => !/^P[1-7]$/.test(s));
  if (bad.length) throw new Error(`unknown scenario ${bad.join(', ')} (P1..P7)`);
  return out;
}

/** The soak's Markdown report (issue 17): load held, faults, oracle, latencies by phase, recovery. */
import { FAULT_KINDS, type FaultRecord } from './faults.js';
import { verdict, type SoakResult } from './soak.js';

/** Samples this long after a fault began count for that fault kind; outside every window, calm. */
const AFTER_FAULT_MS = 30_000;

function pct(sorted: number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const fmt = (ms: number | undefined) => (ms === undefined ? '–' : ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);

function phaseOf(at: number, faults: FaultRecord[]): string {
  let phase = 'calm';
  for (const f of faults) if (at >= f.startedAt && at <= (f.endedAt ?? f.startedAt) + AFTER_FAULT_MS) phase = f.kind;
  return phase;
}

function byPhase(samples: Array<{ at: number; ms: number }>, faults: FaultRecord[]): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const s of samples) {
    const k = phaseOf(s.at, faults);
    m.set(k, [...(m.get(k) ?? []), s.ms]);
  }
  for (const v of m.values()) v.sort((a, b) => a - b);
  return m;
}

export function markdownReport(r: SoakResult, machine: string): string {
  const o = r.options;
  const bad = verdict(r);
  const secs = (r.loadEndedAt - r.startedAt) / 1000;
  const accepted = r.records.filter((x) => x.outcome === 'accepted');
  const lines: string[] = [];
  lines.push(`# Soak ${new Date(r.startedAt).toISOString()}`, '');
  lines.push(`**${bad.length === 0 ? 'PASS' : `FAIL: ${bad.join('; ')}`}**`, '');
  lines.push(
    `Options: ${secs.toFixed(0)} s of load (asked ${o.durationS} s), ${o.rate} sends/s, seed ${o.seed}, a fault every ${o.faultMinS}–${o.faultMaxS} s${o.minEach > 0 ? ` (and until each repeating kind ran ${o.minEach} times)` : ''}, drain window ${o.drainS} s. ${machine}`,
    '',
  );
  lines.push('## Load', '');
  lines.push(`| | count |`, `| --- | --- |`);
  lines.push(`| sends planned | ${r.planned} |`);
  lines.push(
    `| sends made | ${r.records.length} (${((r.records.length / Math.max(1, r.planned)) * 100).toFixed(1)} % of plan: the load held ${r.records.length >= r.planned * 0.99 ? 'yes' : 'NO'}) |`,
  );
  for (const k of ['sms', 'email', 'chat'] as const) lines.push(`| ${k} answered 202 | ${accepted.filter((x) => x.kind === k).length} |`);
  lines.push(`| with an Idempotency-Key | ${r.records.filter((x) => x.key).length} |`);
  lines.push(`| refused (4xx) | ${r.records.filter((x) => x.outcome === 'refused').length} |`);
  lines.push(
    `| no answer (no key, so not repeated; checked through the database) | ${r.records.filter((x) => x.outcome === 'unanswered').length} |`,
  );
  lines.push(`| 503 retried after Retry-After | ${r.http.retried503} |`);
  lines.push(`| connection errors (retried elsewhere when safe) | ${r.http.connectionErrors} |`);
  lines.push(
    `| answers by status | ${Object.entries(r.http.byStatus)
      .map(([s, n]) => `${s}: ${n}`)
      .join(', ')} |`,
  );
  lines.push(`| forbidden answers (5xx other than 503 + Retry-After) | ${r.http.violations.length} |`, '');
  for (const v of r.http.violations.slice(0, 20)) lines.push(`- ${new Date(v.at).toISOString()} ${v.gateway} ${v.status}: ${v.detail}`);

  lines.push('## Oracle', '');
  lines.push(`| | |`, `| --- | --- |`);
  lines.push(
    `| SMS | ${r.oracle.sms.total}: ${r.oracle.sms.sent} reached Twilio once, ${r.oracle.sms.failedWithReason} failed with the provider's reason |`,
  );
  lines.push(
    `| email | ${r.oracle.emails.total}: ${r.oracle.emails.sent} reached SendGrid once, ${r.oracle.emails.failedWithReason} failed with the provider's reason, ${r.oracle.emails.explainedDuplicates} second copies after an unknown outcome (the documented window) |`,
  );
  lines.push(`| **lost** | **${r.oracle.lost.length}** |`);
  lines.push(`| **sent twice** | **${r.oracle.sentTwice.length}** |`);
  lines.push(`| left queued/sending | ${r.oracle.stuck.length} |`);
  lines.push(`| re-queued after no progress for the stall window (late, not lost) | ${r.oracle.requeuedAfterStall} |`);
  lines.push(`| drained in | ${r.drainedInMs === undefined ? `NOT within ${o.drainS} s` : fmt(r.drainedInMs)} |`);
  lines.push(
    `| replicas that exited by themselves (started again automatically) | ${r.unexpectedExits.length ? r.unexpectedExits.map((u) => u.replica).join(', ') : 'none'} |`,
  );
  lines.push(
    `| starts that exited before ready (started again, as an orchestrator would) | ${r.failedStarts.length ? r.failedStarts.map((u) => u.replica).join(', ') : 'none'} |`,
  );
  lines.push(`| needed a restart by hand | ${r.manual.length ? r.manual.join(', ') : 'none'} |`, '');
  for (const f of [...r.oracle.lost, ...r.oracle.sentTwice, ...r.oracle.stuck].slice(0, 30)) lines.push(`- ${f.what} ${f.id}: ${f.detail}`);
  lines.push(
    '',
    '### SSE clients',
    '',
    '| client | filter | owed | received | missing | extra | connections | stalls noticed | problems |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const c of r.oracle.sse)
    lines.push(
      `| ${c.client} | ${c.filter} | ${c.expected} | ${c.received} | ${c.missing} | ${c.extra} | ${c.connections} | ${c.stalls} | ${c.problems.slice(0, 3).join('; ') || 'none'} |`,
    );

  lines.push('', '## Faults', '', '| kind | count | recovery (fault start → probe SMS sent), median / max |', '| --- | --- | --- |');
  for (const k of FAULT_KINDS) {
    const fs = r.faults.filter((f) => f.kind === k);
    const rec = fs
      .map((f) => (f.recoveredAt ? f.recoveredAt - f.startedAt : Number.NaN))
      .filter(Number.isFinite)
      .sort((a, b) => a - b);
    lines.push(
      `| ${k} | ${fs.length} | ${fs.length ? `${fmt(pct(rec, 50))} / ${fmt(rec.at(-1))}${rec.length < fs.length ? ` (${fs.length - rec.length} NOT recovered)` : ''}` : '–'} |`,
    );
  }
  lines.push('', '<details><summary>every fault</summary>', '');
  for (const f of r.faults) {
    lines.push(
      `- ${new Date(f.startedAt).toISOString()} ${f.kind} ${f.target}: over after ${fmt((f.endedAt ?? f.startedAt) - f.startedAt)}, recovered ${f.recoveredAt ? `after ${fmt(f.recoveredAt - f.startedAt)}` : 'NOT'}${f.error ? `, ERROR ${f.error}` : ''}`,
    );
  }
  lines.push('', '</details>', '');

  lines.push(
    '## Latency',
    '',
    `Phase of a sample: the last fault that began before it and ended less than ${AFTER_FAULT_MS / 1000} s before it, else calm.`,
    '',
  );
  lines.push('| phase | send → sent p50 | p99 | n | commit → SSE p50 | p99 | n |', '| --- | --- | --- | --- | --- | --- | --- |');
  const sent = byPhase(r.oracle.sendToSent, r.faults);
  const sse = byPhase(r.sseLatency, r.faults);
  for (const phase of ['calm', ...FAULT_KINDS]) {
    const a = sent.get(phase) ?? [];
    const b = sse.get(phase) ?? [];
    if (!a.length && !b.length) continue;
    lines.push(
      `| ${phase} | ${fmt(pct(a, 50))} | ${fmt(pct(a, 99))} | ${a.length} | ${fmt(pct(b, 50))} | ${fmt(pct(b, 99))} | ${b.length} |`,
    );
  }
  if (r.unexpectedExits.length || r.failedStarts.length) {
    lines.push('', '## Unexpected exits', '');
    for (const u of [...r.unexpectedExits, ...r.failedStarts])
      lines.push(`### ${u.replica} at ${new Date(u.at).toISOString()}`, '', '```', u.output.slice(-1500), '```', '');
  }
  return `${lines.join('\n')}\n`;
}

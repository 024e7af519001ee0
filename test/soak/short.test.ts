/**
 * The short soak (issue 17): `pnpm soak`'s harness with load and a fault a second or two after
 * the previous one recovered, until every fault kind ran once (the load lasts as long as the
 * faults: about two minutes, the rolling restart and the two 10–20 s stalls most of it), on its
 * own PostgreSQL and 3-node NATS cluster with every service replicated; then the oracle must find
 * nothing lost, nothing sent twice, nothing stuck, no SSE gap and no forbidden answer, and no
 * replica needing a restart by hand. The report is printed as the test's comment when it fails.
 * The faults are those of the long run (a stall still outlasts the bus's 10 s ping detection and
 * the workers' ack wait); only the calm between them and the rate are shorter, so the file costs
 * `pnpm test` less: each fault waits for its probe SMS to be sent before the next one starts.
 */
import t from 'tap';
import { FAULT_KINDS } from '../../soak/lib/faults.js';
import { markdownReport } from '../../soak/lib/report.js';
import { runSoak, verdict } from '../../soak/lib/soak.js';

// the stack's start (~30 s on 2 busy cores), every fault kind once (the rolling restart alone
// ~45 s), the drain: well inside this bound
t.setTimeout(12 * 60_000);

t.test('a short soak with every fault kind: nothing lost, nothing sent twice, no SSE gap', async (t) => {
  const lines: string[] = [];
  const result = await runSoak(t, {
    // the load goes on until every fault kind ran (everyKind), whatever the duration
    durationS: 30,
    rate: 2,
    seed: 17,
    faultMinS: 1,
    faultMaxS: 2,
    drainS: 90,
    everyKind: true,
    minEach: 0,
    log: (msg) => lines.push(`${new Date().toISOString()} ${msg}`),
  });
  const report = markdownReport(result, 'short soak (pnpm test)');
  const problems = verdict(result);
  if (problems.length) t.comment(`${lines.join('\n')}\n\n${report}`);
  for (const kind of FAULT_KINDS)
    t.ok(
      result.faults.some((f) => f.kind === kind),
      `fault ${kind} injected`,
    );
  t.ok(result.oracle.sms.total > 0 && result.oracle.emails.total > 0, 'SMS and emails were sent');
  t.equal(result.oracle.lost.length, 0, 'nothing lost');
  t.equal(result.oracle.sentTwice.length, 0, 'nothing sent twice (beyond the documented unknown-outcome window)');
  t.equal(result.oracle.stuck.length, 0, 'nothing left queued or sending');
  t.same(
    result.oracle.sse.filter((c) => c.problems.length).map((c) => `${c.client}: ${c.problems.join('; ')}`),
    [],
    'every SSE client got every event of its filter once, in order',
  );
  t.same(result.http.violations, [], 'no 5xx but 503 with Retry-After');
  t.same(result.manual, [], 'no replica needs a restart by hand');
  t.same(problems, [], 'the run kept every promise');
});

/** P7: each service's idle RSS and start → ready, on its own ports beside the running stack. */
import { summarize, type Row } from '../lib/report.js';
import { rssBytes, sleep } from '../lib/procs.js';
import { allocatePorts, distEntry, SERVICES, staleSourceFiles, startService, type StackEnvOpts } from '../lib/stack.js';
import type { Ctx, ScenarioResult } from './context.js';

/* ------------------------------------------------------------------------------------------ */
/* P7: idle RSS and start → ready of each service                                             */
/* ------------------------------------------------------------------------------------------ */

export async function p7(c: Ctx): Promise<ScenarioResult> {
  const rows: Row[] = [];
  const detail: Record<string, unknown> = {};
  // Own ports and NATS prefix, same database: the running stack is not disturbed.
  const env: StackEnvOpts = { ...c.env, prefix: `${c.env.prefix}S`, ports: await allocatePorts() };
  for (const name of SERVICES) {
    const ready: number[] = [];
    const rss: number[] = [];
    const fromDist = distEntry(name) !== undefined;
    const stale = staleSourceFiles(name);
    const how = fromDist ? 'from build, node dist/main.js' : 'from source, tsx';
    for (let i = 0; i < c.runs; i++) {
      const s = await startService(name, env, { fromDist });
      await sleep(c.quick ? 1000 : 2000);
      const r = rssBytes(s.proc.pid) ?? Number.NaN;
      await s.proc.stop('SIGTERM', 10_000);
      ready.push(s.readyMs / 1000);
      rss.push(r / 1e6);
      c.log(`P7 ${name} run ${i + 1} (${how}): ready in ${(s.readyMs / 1000).toFixed(2)} s, idle RSS ${(r / 1e6).toFixed(0)} MB`);
    }
    detail[name] = { how, staleSourceFiles: stale, readySeconds: ready, rssMB: rss };
    const staleNote = fromDist && stale > 0 ? ` (${stale} source files newer than the build)` : '';
    rows.push(
      {
        scenario: 'P7',
        measure: `${name} idle RSS (${how})${staleNote}`,
        unit: 'MB',
        value: summarize(rss),
        goal: { text: '≤ 80 MB', on: 'measure', direction: 'atMost', threshold: 80 },
      },
      {
        scenario: 'P7',
        measure: `${name} start → ready (${how})`,
        unit: 's',
        value: summarize(ready),
        goal: { text: '≤ 2 s', on: 'measure', direction: 'atMost', threshold: 2 },
      },
    );
  }
  return { rows, detail };
}

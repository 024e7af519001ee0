/**
 * The gateway's worst case under its default settings (every bounded buffer full at once,
 * services/gateway/src/memory-budget.ts) fits the memory limit its deployments give it, in
 * k8s/ and in docker-compose.yaml: a raised default or a lowered limit fails here (issue 14).
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { REPO_ROOT } from '@hatch/testing';
import { parseGatewayConfig } from '../../services/gateway/src/config.js';
import { worstCaseMemory } from '../../services/gateway/src/memory-budget.js';

const UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, ki: 1024, mi: 1024 ** 2, gi: 1024 ** 3, b: 1 };

/** Kubernetes ("512Mi") and Compose ("512m": binary there) memory quantities in bytes. */
function bytes(quantity: string, compose: boolean): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(String(quantity).trim());
  if (!m) throw new Error(`not a memory quantity: ${quantity}`);
  const unit = (m[2] ?? '').toLowerCase();
  const factor = compose
    ? ({ b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 } as Record<string, number>)[unit.replace(/b$/, '') || 'b']
    : UNITS[unit];
  if (factor === undefined) throw new Error(`unknown unit in ${quantity}`);
  return Number(m[1]) * factor;
}

const read = (rel: string) => fs.readFileSync(path.join(REPO_ROOT, rel), 'utf8');
const defaults = () => parseGatewayConfig({ DATABASE_URL: 'postgres://x@127.0.0.1/x', HATCH_API_TOKEN: 'x'.repeat(32) });

function limits(): Array<{ where: string; bytes: number }> {
  const out: Array<{ where: string; bytes: number }> = [];
  for (const doc of read('k8s/base/gateway.yaml')
    .split(/^---$/m)
    .map((d) => parse(d))) {
    if (doc?.kind !== 'Deployment') continue;
    for (const c of doc.spec.template.spec.containers)
      out.push({ where: `k8s/base/gateway.yaml (${c.name})`, bytes: bytes(c.resources.limits.memory, false) });
  }
  const compose = parse(read('docker-compose.yaml'));
  out.push({ where: 'docker-compose.yaml (gateway)', bytes: bytes(compose.services.gateway.deploy.resources.limits.memory, true) });
  return out;
}

t.test("the gateway's worst case under its defaults fits every memory limit it is deployed with", async (t) => {
  const worst = worstCaseMemory(defaults());
  t.comment(worst.terms.map((x) => `${x.what}: ${(x.bytes / 1024 ** 2).toFixed(0)} MiB`).join('; '));
  const found = limits();
  t.equal(found.length, 2, 'a limit in k8s and one in compose');
  for (const l of found) {
    t.ok(
      worst.bytes <= l.bytes,
      `${l.where}: worst case ${(worst.bytes / 1024 ** 2).toFixed(0)} MiB ≤ limit ${(l.bytes / 1024 ** 2).toFixed(0)} MiB`,
    );
  }
});

t.test('the check is live: doubling the SSE connection bound or the body budget breaks it', async (t) => {
  const base = defaults();
  const smallest = Math.min(...limits().map((l) => l.bytes));
  t.ok(
    worstCaseMemory({ ...base, HATCH_SSE_MAX_CLIENTS: base.HATCH_SSE_MAX_CLIENTS * 4 }).bytes > smallest,
    '4 × SSE clients exceeds the limit',
  );
  t.ok(
    worstCaseMemory({ ...base, HATCH_BODY_BYTES_IN_FLIGHT_MAX: base.HATCH_BODY_BYTES_IN_FLIGHT_MAX * 4 }).bytes > smallest,
    '4 × body budget exceeds the limit',
  );
});

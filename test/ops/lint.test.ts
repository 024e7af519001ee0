/**
 * `pnpm lint` inside `pnpm test` (issue 16): CI runs only the README's commands, so this file is
 * where ESLint and Prettier's check run in CI, as typecheck.test.ts is for the type-check. It
 * runs package.json's own `lint` script, step by step (ESLint, then the format check), so the two
 * cannot drift apart and a lint error does not hide a formatting one.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { REPO_ROOT } from '@hatch/testing';
import { run } from './tools.js';

// ESLint's type-aware pass builds the TypeScript programs again (~45 s of CPU): minutes on a loaded 2-core machine.
t.setTimeout(600_000);

const lint: string = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')).scripts.lint;
// `a && b`, each run as pnpm runs a script: the workspace's binaries first on PATH; under
// `pnpm test --coverage` not profiled (only node_modules would be, in megabytes of V8 coverage)
const steps = lint.split('&&').map((s) => s.trim());
const { NODE_V8_COVERAGE: _notProfiled, ...parentEnv } = process.env;
const env = { ...parentEnv, PATH: `${path.join(REPO_ROOT, 'node_modules/.bin')}:${process.env.PATH}` };

t.ok(
  steps.some((s) => s.startsWith('eslint')) && steps.some((s) => s.startsWith('prettier --check')),
  `pnpm lint runs ESLint and Prettier's check: ${lint}`,
);

for (const step of steps) {
  t.test(`pnpm lint: ${step} passes`, async (t) => {
    const r = await run('sh', ['-c', step], { cwd: REPO_ROOT, env, timeoutMs: 540_000 });
    t.equal(r.code, 0, `${step}\n${r.stdout}${r.stderr}`);
  });
}

/**
 * `pnpm check` inside `pnpm test` (issue 15): tests run from source through tsx, which strips types
 * without checking them, so a type error would otherwise pass every test. CI runs only the
 * README's commands (`./setup.sh`, which builds with `pnpm build`, then `pnpm test`): this file
 * is where its type-check lives. It runs package.json's own `check` script, step by step, so the
 * two cannot drift apart.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { REPO_ROOT } from '@hatch/testing';
import { run } from './tools.js';

// tsc over every package, service and test takes ~30 s alone, minutes on a loaded 2-core machine.
t.setTimeout(600_000);

const check: string = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')).scripts.check;
// `a && b && c`, each run as pnpm runs a script: the workspace's binaries first on PATH
const steps = check.split('&&').map((s) => s.trim());
const env = { ...process.env, PATH: `${path.join(REPO_ROOT, 'node_modules/.bin')}:${process.env.PATH}` };

for (const step of steps) {
  t.test(`pnpm check: ${step} passes`, async (t) => {
    const r = await run('sh', ['-c', step], { cwd: REPO_ROOT, env, timeoutMs: 540_000 });
    t.equal(r.code, 0, `${step}\n${r.stdout}${r.stderr}`);
  });
}

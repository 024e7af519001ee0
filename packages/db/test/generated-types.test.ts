import { execFileSync } from 'node:child_process';
import t from 'tap';
import { createTestDb } from '@hatch/testing';
import { codegenArgs, GENERATED_FILE } from '../src/codegen-cli.js';
import path from 'node:path';

t.test('committed generated.ts matches the migrated schema (kysely-codegen --verify)', async (t) => {
  const { url } = await createTestDb(t);
  const bin = path.resolve(path.dirname(GENERATED_FILE), '../node_modules/.bin/kysely-codegen');
  let output: string;
  try {
    output = execFileSync(bin, codegenArgs(url, true), { encoding: 'utf8', stdio: 'pipe' });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    t.fail(`generated types are stale: run \`pnpm db:types\`\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    return;
  }
  t.pass(`types up to date ${output.trim()}`);
});

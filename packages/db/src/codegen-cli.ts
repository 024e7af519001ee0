/**
 * `pnpm db:types`: regenerates src/generated.ts from a freshly migrated scratch database
 * (kysely-codegen), so the committed types always describe sql/. `--verify` only checks
 * (a test runs it: a migration without regenerated types fails the suite).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import postgres from 'postgres';
import { defaultMigrationsDir, migrate, quoteIdent } from './migrate.js';

export const GENERATED_FILE = path.resolve(path.dirname(new URL(import.meta.url).pathname), 'generated.ts');
const CODEGEN_BIN = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../node_modules/.bin/kysely-codegen');

export function codegenArgs(url: string, verify: boolean): string[] {
  return [
    '--dialect',
    'postgres',
    '--url',
    url,
    '--out-file',
    GENERATED_FILE,
    '--exclude-pattern',
    'schema_migrations',
    '--log-level',
    'error',
    ...(verify ? ['--verify'] : []),
  ];
}

export function runCodegen(url: string, verify: boolean): void {
  execFileSync(CODEGEN_BIN, codegenArgs(url, verify), { stdio: 'inherit' });
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname);
if (isMain) {
  const base = process.env.HATCH_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const name = `hatch_codegen_${randomBytes(4).toString('hex')}`;
  const url = new URL(base);
  url.pathname = `/${name}`;
  const admin = postgres(base, { max: 1, onnotice: () => {} });
  try {
    await migrate({ url: url.toString(), dir: defaultMigrationsDir() });
    runCodegen(url.toString(), process.argv.includes('--verify'));
  } finally {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
    await admin.end();
  }
}

/** `pnpm migrate`: apply sql/ to DATABASE_URL (or POSTGRES_* parts), creating the database if needed. */
import { databaseUrlFrom } from '@hatch/config';
import { defaultMigrationsDir, migrate, MigrationError } from './migrate.js';

const url = databaseUrlFrom(process.env);
const dir = process.env.HATCH_MIGRATIONS_DIR ?? defaultMigrationsDir();
try {
  const res = await migrate({ url, dir, log: (m) => process.stdout.write(`migrate: ${m}\n`) });
  process.stdout.write(`migrate: ${res.applied.length} applied, ${res.alreadyApplied.length} already applied\n`);
} catch (err) {
  const msg = err instanceof MigrationError ? err.message : `cannot migrate ${redact(url)}: ${(err as Error).message}`;
  process.stderr.write(`migrate: ${msg}\n`);
  process.exitCode = 1;
}

function redact(u: string): string {
  try {
    const x = new URL(u);
    if (x.password) x.password = '***';
    return x.toString();
  } catch {
    return '<malformed DATABASE_URL>';
  }
}

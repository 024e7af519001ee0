/**
 * Used by scripts/test.mjs around a test run: `prepare` builds the run's migrated template
 * database once (so parallel test files only clone it), `cleanup` drops it and anything a
 * crashed test file left behind.
 */
import { dropRunDatabases, dropTemplate, ensureTemplate, testAdminUrl } from './db.js';

const cmd = process.argv[2];
try {
  if (cmd === 'prepare') {
    await ensureTemplate();
  } else if (cmd === 'cleanup') {
    const left = await dropRunDatabases();
    await dropTemplate();
    if (left.length) process.stdout.write(`test cleanup: dropped ${left.length} leftover database(s)\n`);
  } else {
    throw new Error(`usage: run-cli.ts prepare|cleanup`);
  }
} catch (err) {
  process.stderr.write(`test ${cmd}: cannot use PostgreSQL at ${testAdminUrl()}: ${(err as Error).message}\n`);
  process.exitCode = 1;
}

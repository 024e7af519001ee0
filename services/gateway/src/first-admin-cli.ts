/**
 * `pnpm admin:first` (./setup.sh's first admin; first-admin.ts). Reads DATABASE_URL (or its
 * parts) like `pnpm migrate`, PUBLIC_URL (default http://localhost:$PORT) and HATCH_INVITE_HOURS.
 *
 *   --status     prints `none`, `pending <email>` (an admin who has not set a password yet) or
 *                `exists <email>`; writes nothing.
 *   --prompted   name, email and password as three lines on stdin (never in argv, where `ps`
 *                shows it): creates the admin with that password. A broken rule: exit 3, the
 *                reason on stderr ("password must be at least 12 characters"), nothing written.
 *   (neither)    creates a pending admin (email HATCH_ADMIN_EMAIL, default admin@localhost) and
 *                prints its one-time link; a pending one gets a new link.
 *
 * Prints one line: `exists <email>`, `created <email>`, or `link <email> <url> <expiry>`.
 */
import { databaseUrlFrom } from '@hatch/config';
import { createDb, lockAdmins } from '@hatch/db';
import { ensureFirstAdmin, firstAdminProblem, type FirstAdminInput } from './first-admin.js';

const args = new Set(process.argv.slice(2));

async function readInput(): Promise<FirstAdminInput> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const [name = '', email = '', password = ''] = Buffer.concat(chunks).toString('utf8').split('\n');
  return { name, email, password };
}

async function main(): Promise<number> {
  const input = args.has('--prompted') ? await readInput() : undefined;
  const problem = input && firstAdminProblem(input);
  if (problem) {
    process.stderr.write(`${problem}\n`);
    return 3;
  }
  const db = createDb(databaseUrlFrom(process.env), { max: 1, applicationName: 'hatch-first-admin' });
  try {
    if (args.has('--status')) {
      const first = (await db.db.transaction().execute(lockAdmins))[0];
      process.stdout.write(first ? `${first.password_hash === null ? 'pending' : 'exists'} ${first.email}\n` : 'none\n');
      return 0;
    }
    const hours = Number(process.env.HATCH_INVITE_HOURS ?? 72);
    const r = await ensureFirstAdmin(db, {
      input,
      linkEmail: process.env.HATCH_ADMIN_EMAIL || undefined,
      publicUrl: process.env.PUBLIC_URL || `http://localhost:${process.env.PORT || 5002}`,
      inviteMs: (Number.isFinite(hours) && hours > 0 ? hours : 72) * 3600_000,
    });
    process.stdout.write(r.outcome === 'link' ? `link ${r.email} ${r.link} ${r.expiresAt.toISOString()}\n` : `${r.outcome} ${r.email}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`first admin: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await db.close();
  }
}

process.exitCode = await main();

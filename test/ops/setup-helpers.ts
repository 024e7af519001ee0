/** Helpers of the setup.sh tests: a temporary copy of the checkout, a clean environment, psql. */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, type Teardownable } from '@hatch/testing';
import { run } from './tools.js';

/** The checkout as a user has it (tracked and untracked files, not ignored ones), node_modules hard-linked. */
export async function copyCheckout(t: Teardownable): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hatch-setup-'));
  fs.chmodSync(dir, 0o755); // as root, the embedded PostgreSQL runs as `postgres` and must reach its binaries
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const script = [
    'set -e',
    'git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d "" f; do [ -e "$f" ] && printf "%s\\0" "$f"; done | xargs -0 cp -p --parents -t "$DEST"',
    'find . -name node_modules -type d -prune -not -path "./.git/*" | while read -r nm; do mkdir -p "$DEST/$(dirname "$nm")"; cp -al "$nm" "$DEST/$nm"; done',
    // what `pnpm build` made: the UI and the services' bundles, timestamps kept (setup rebuilds
    // only when an output is missing or a source is newer)
    'for d in web/dist services/*/dist; do if [ -d "$d" ]; then cp -a "$d" "$DEST/$d"; fi; done',
  ].join('\n');
  const r = await run('bash', ['-c', script], { cwd: REPO_ROOT, env: { ...process.env, DEST: dir } });
  if (r.code !== 0) throw new Error(`copying the checkout failed: ${r.stderr}`);
  return dir;
}

/** The machine's environment (registry certificates, PATH) without any Hatch or test setting. */
export function setupEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(DATABASE_URL|NATS_URL|PORT|PUBLIC_URL|LOG_LEVEL)$|^(HATCH_|TWILIO_|SENDGRID_|POSTGRES_|EMULATOR_|TAP|npm_)/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, NO_COLOR: '1', ...extra };
}

export async function psql(url: string, query: string): Promise<string[]> {
  const r = await run('psql', [url, '-XAtc', query]);
  if (r.code !== 0) throw new Error(`psql: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean);
}

export const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8);

/** Every step header ("[3/7] PostgreSQL and NATS") is followed, before the next one, by one line with its duration. */
export function assertStepDurations(
  t: { equal(found: unknown, wanted: unknown, message: string): unknown },
  stdout: string,
  what: string,
): void {
  const lines = stdout.split('\n');
  const headers = lines.flatMap((l, i) => (/^\[\d+\/\d+\] /.test(l) ? [i] : []));
  t.equal(headers.length, 7, `${what}: seven step headers\n${stdout}`);
  headers.forEach((start, k) => {
    const section = lines.slice(start + 1, headers[k + 1] ?? lines.length);
    const durations = section.filter((l) => /^\s+done in \d+\.\d s$/.test(l));
    t.equal(durations.length, 1, `${what}: "${lines[start]}" is followed by one duration line (done in N.N s)`);
  });
}

/** The migrations a fully migrated database lists in schema_migrations. */
export const migrationFiles = () =>
  fs
    .readdirSync(path.join(REPO_ROOT, 'sql'))
    .filter((f) => f.endsWith('.sql'))
    .sort();

export function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

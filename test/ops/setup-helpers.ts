/** Helpers of the setup.sh tests: a temporary copy of the checkout, a clean environment, psql. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, type Teardownable } from '@hatch/testing';
import { run } from './tools.js';

/**
 * The checkout as a user has it (tracked and untracked files, not ignored ones), node_modules
 * hard-linked, with a build that setup.sh's Build step finds up to date: the checkout's own
 * (services/<name>/dist, web/dist, timestamps kept) when it is, else the one shared build of this
 * tree (sharedBuild), so that every setup run does not run `pnpm build` again on its own.
 */
export async function copyCheckout(t: Teardownable): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hatch-setup-'));
  fs.chmodSync(dir, 0o755); // as root, the embedded PostgreSQL runs as `postgres` and must reach its binaries
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  await copySources(dir);
  // what `pnpm build` made: the UI and the services' bundles. The checkout's own keep their
  // timestamps (setup rebuilds only when an output is missing or a source is newer); a shared
  // build's are made now, as when setup builds in the copy.
  const files = checkoutFiles();
  const fresh = buildUpToDate(files);
  const from = fresh ? REPO_ROOT : await sharedBuild(files);
  // The glob is expanded where the build is (cwd FROM): in a fresh clone the checkout has no
  // services/*/dist, and a glob expanded there copied only web/dist, so setup built again in every copy.
  const script = `for d in web/dist services/*/dist; do if [ -d "$d" ]; then cp ${fresh ? '-a' : '-R'} "$d" "$DEST/$d"; fi; done`;
  const r = await run('bash', ['-c', script], { cwd: from, env: { ...process.env, DEST: dir } });
  if (r.code !== 0) throw new Error(`copying the build failed: ${r.stderr}`);
  const missing = buildOutputs(files).filter((out) => !fs.existsSync(path.join(dir, out)));
  if (missing.length) throw new Error(`the copy lacks the build (setup would build again in it): ${missing.join(', ')}`);
  return dir;
}

/** Copies the checkout (cwd) to $DEST: its tracked and untracked (not ignored) files, its node_modules hard-linked. */
const COPY_SOURCES = [
  'set -e',
  'git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d "" f; do [ -e "$f" ] && printf "%s\\0" "$f"; done | xargs -0 cp -p --parents -t "$DEST"',
  'find . -name node_modules -type d -prune -not -path "./.git/*" | while read -r nm; do mkdir -p "$DEST/$(dirname "$nm")"; cp -al "$nm" "$DEST/$nm"; done',
].join('\n');

async function copySources(dest: string): Promise<void> {
  const r = await run('bash', ['-c', COPY_SOURCES], { cwd: REPO_ROOT, env: { ...process.env, DEST: dest } });
  if (r.code !== 0) throw new Error(`copying the checkout failed: ${r.stderr}`);
}

/** The files a copy of the checkout holds besides node_modules (tracked, and untracked but not ignored), as paths from its root. */
function checkoutFiles(): string[] {
  const listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
  });
  return listed
    .split('\0')
    .filter(Boolean)
    .sort()
    .filter((f) => fs.statSync(path.join(REPO_ROOT, f), { throwIfNoEntry: false })?.isFile());
}

/** What setup.sh's Build step looks for: each service's dist/main.js and web/dist/index.html. */
function buildOutputs(files: string[]): string[] {
  const outputs = files.filter((f) => /^services\/[^/]+\/src\/main\.ts$/.test(f)).map((f) => f.replace(/src\/main\.ts$/, 'dist/main.js'));
  if (files.includes('web/package.json')) outputs.push('web/dist/index.html');
  return outputs;
}

/**
 * Whether setup.sh's Build step would find the checkout's build up to date in a copy: every
 * service's dist/main.js and web/dist/index.html there, and none of the sources it is made from
 * (packages, services, web but their node_modules, dist and test; the lockfile; the bundler) newer,
 * among the files a copy holds (an ignored file, such as a tsbuildinfo, is not copied). The same
 * rule as setup.sh's; were they ever to differ, setup would only build in the copy itself, or a
 * shared build of the same sources be used.
 */
function buildUpToDate(files: string[]): boolean {
  const mtime = (f: string) => fs.statSync(path.join(REPO_ROOT, f), { bigint: true, throwIfNoEntry: false })?.mtimeNs;
  const outputs = buildOutputs(files);
  const sources = files.filter(
    (f) =>
      f === 'pnpm-lock.yaml' ||
      f === 'scripts/bundle.mjs' ||
      (/^(packages|services|web)\//.test(f) && !f.split('/').some((part) => ['node_modules', 'dist', 'test'].includes(part))),
  );
  let newest = 0n;
  for (const f of sources) newest = [newest, mtime(f) ?? 0n].reduce((a, b) => (b > a ? b : a));
  return outputs.every((out) => {
    const built = mtime(out);
    return built !== undefined && built >= newest;
  });
}

/**
 * One `pnpm build` of this tree for every setup test that needs one (the checkout's own build is
 * missing or older than its sources): made once in a copy of the checkout, as setup.sh would make
 * it there, and kept (its dist directories only) in a directory keyed by the content of every
 * file the copy holds, so a change to any of them makes a new one. Setup tests running at the same
 * time wait for the one build (flock) rather than each making its own; keys of this checkout
 * unused for an hour are removed. Returns the directory holding web/dist and services/<name>/dist.
 */
async function sharedBuild(files: string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const f of files)
    hash
      .update(`${f}\0`)
      .update(fs.readFileSync(path.join(REPO_ROOT, f)))
      .update('\0');
  const cacheRoot = path.join(os.tmpdir(), `hatch-setup-build-${createHash('sha256').update(REPO_ROOT).digest('hex').slice(0, 12)}`);
  const out = path.join(cacheRoot, hash.digest('hex').slice(0, 32));
  if (fs.existsSync(path.join(out, '.complete'))) {
    const now = new Date();
    fs.utimesSync(out, now, now); // in use: kept another hour
    return out;
  }
  fs.mkdirSync(cacheRoot, { recursive: true });
  const script = [
    'set -e',
    'exec 9>"$CACHE_ROOT/lock"',
    'flock 9',
    '[ -f "$OUT/.complete" ] && exit 0',
    'find "$CACHE_ROOT" -mindepth 1 -maxdepth 1 -type d -mmin +60 -exec rm -rf {} +',
    'rm -rf "$OUT" "$OUT.partial"',
    'tree=$(mktemp -d "$CACHE_ROOT/tree-XXXXXX")',
    'trap \'rm -rf "$tree"\' EXIT',
    'DEST=$tree bash -c "$COPY"',
    '(cd "$tree" && pnpm build) >"$tree.log" 2>&1 || { tail -n 40 "$tree.log" >&2; rm -f "$tree.log"; exit 1; }',
    'rm -f "$tree.log"',
    'cd "$tree"',
    'for d in web/dist services/*/dist; do mkdir -p "$OUT.partial/${d%/dist}"; mv "$d" "$OUT.partial/$d"; done',
    'mv "$OUT.partial" "$OUT"',
    'touch "$OUT/.complete"',
  ].join('\n');
  const r = await run('bash', ['-c', script], {
    cwd: REPO_ROOT,
    env: { ...setupEnv({}), CACHE_ROOT: cacheRoot, OUT: out, COPY: COPY_SOURCES },
    timeoutMs: 400_000,
  });
  if (r.code !== 0) throw new Error(`the shared pnpm build failed:\n${r.stderr}`);
  return out;
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

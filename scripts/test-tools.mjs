#!/usr/bin/env node
/**
 * The programs outside Node that the tests run, checked by `pnpm test` (scripts/test.mjs) before
 * the first test, so that no test finds one missing halfway through a run (issue 15).
 *
 *   node scripts/test-tools.mjs      the check alone: exit 0 when every tool is there (after
 *                                    installing what was missing, where it can)
 *
 * One line per tool: `nginx: ok (/usr/sbin/nginx)`, or `nginx: installing (nginx)`. Missing tools
 * are installed where that can be done without asking: as root with apt-get (Debian/Ubuntu, the
 * machines CI runs on): one `apt-get update`, then one `apt-get install -y
 * --no-install-recommends <packages>`. Elsewhere (not root, no apt-get, or
 * HATCH_PREFLIGHT_NO_INSTALL=1) nothing is installed: each missing tool gets a line with the
 * command that installs it, and the check fails.
 *
 * Each tool is looked for where its tests look (same overrides, same fixed paths), so "ok" here
 * means the test finds it. A tool is checked by its command, never by its package: kubectl, for
 * one, often comes from Kubernetes' own `kubectl` package, which conflicts with Debian's
 * `kubernetes-client`. pgbench is not listed: only `pnpm bench` runs it, no test does.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const isExecutable = (p) => {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
};

/** `cmd` in the directories of `PATH`, as execFile / `command -v` find it. */
export function searchPath(cmd, PATH = '') {
  for (const dir of PATH.split(':')) {
    if (dir && isExecutable(path.join(dir, cmd))) return path.join(dir, cmd);
  }
  return undefined;
}

const firstExecutable = (candidates) => candidates.find((c) => c && isExecutable(c));

/** PostgreSQL's server binaries, found as packages/testing/src/spawn-postgres.ts (pgBinDir) finds them. */
function pgBinDir(env) {
  const has = (d) => isExecutable(path.join(d, 'initdb')) && isExecutable(path.join(d, 'pg_ctl'));
  if (env.HATCH_PG_BIN) return has(env.HATCH_PG_BIN) ? env.HATCH_PG_BIN : undefined;
  const base = '/usr/lib/postgresql'; // Debian: one directory per major version, outside PATH
  if (fs.existsSync(base)) {
    const versions = fs
      .readdirSync(base)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) if (has(path.join(base, v, 'bin'))) return path.join(base, v, 'bin');
  }
  const pgConfig = searchPath('pg_config', env.PATH);
  const dir = pgConfig ? spawnSync(pgConfig, ['--bindir'], { encoding: 'utf8' }).stdout?.trim() : '';
  return dir && has(dir) ? dir : undefined;
}

/** name, Debian package, who needs it, and `find(env)` → where it is (undefined: missing). */
export const TOOLS = [
  // web/test/fixture.ts: HATCH_CHROMIUM or Debian's Chromium, driven by playwright-core (no browser download)
  { name: 'chromium', pkg: 'chromium', find: (env) => firstExecutable([env.HATCH_CHROMIUM ?? '/usr/bin/chromium']) },
  // T8's proxy leg (services/gateway/test/sse-nginx.test.ts) and deploy/nginx.conf (test/ops/compose.test.ts)
  { name: 'nginx', pkg: 'nginx', find: () => firstExecutable(['/usr/sbin/nginx', '/usr/bin/nginx']) },
  // test/ops/setup.test.ts: setup.sh is shellcheck-clean
  { name: 'shellcheck', pkg: 'shellcheck', find: (env) => searchPath('shellcheck', env.PATH) },
  // test/ops/compose.test.ts: `docker-compose config` validates the compose file (no engine needed)
  { name: 'docker-compose', pkg: 'docker-compose', find: (env) => searchPath('docker-compose', env.PATH) },
  // test/ops/kustomize.test.ts: `kubectl kustomize` renders the overlays
  { name: 'kubectl', pkg: 'kubernetes-client', find: (env) => searchPath('kubectl', env.PATH) },
  // fault tests: spawnNats (packages/testing/src/spawn-nats.ts) runs a nats-server of their own
  {
    name: 'nats-server',
    pkg: 'nats-server',
    find: (env) =>
      firstExecutable([
        env.HATCH_NATS_SERVER_BIN,
        searchPath('nats-server', env.PATH),
        '/usr/sbin/nats-server',
        '/usr/local/bin/nats-server',
      ]),
  },
  // fault tests: spawnPostgres runs a cluster of their own (initdb + pg_ctl)
  { name: 'initdb/pg_ctl', pkg: 'postgresql', find: (env) => pgBinDir(env) },
  // test/ops/setup-local.test.ts: a stopped Debian cluster of its own for setup.sh to start
  { name: 'pg_createcluster', pkg: 'postgresql-common', find: (env) => searchPath('pg_createcluster', env.PATH) },
  // test/ops/setup*.test.ts read what setup.sh migrated
  { name: 'psql', pkg: 'postgresql-client', find: (env) => searchPath('psql', env.PATH) },
  // test/ops/setup-helpers.ts copies the checkout as a user has it (git ls-files)
  { name: 'git', pkg: 'git', find: (env) => searchPath('git', env.PATH) },
];

/**
 * Checks every tool, installs the missing ones where it can (see the header), prints one line per
 * tool to `out`. Returns true when every tool is there.
 */
export function preflight({ env = process.env, out = process.stdout, uid = process.getuid?.() } = {}) {
  const say = (line) => out.write(`${line}\n`);
  const missing = [];
  const aptGet = searchPath('apt-get', env.PATH);
  let cannot = '';
  if (env.HATCH_PREFLIGHT_NO_INSTALL === '1') cannot = 'installing is turned off (HATCH_PREFLIGHT_NO_INSTALL=1)';
  else if (uid !== 0) cannot = 'not root';
  else if (!aptGet) cannot = 'no apt-get on this system';
  const sudo = uid === 0 ? '' : 'sudo ';
  const installCmd = (pkgs) => `${sudo}apt-get install -y --no-install-recommends ${pkgs.join(' ')}`;

  for (const tool of TOOLS) {
    const at = tool.find(env);
    if (at) say(`${tool.name}: ok (${at})`);
    else {
      missing.push(tool);
      if (!cannot) say(`${tool.name}: installing (${tool.pkg})`);
      else
        say(
          `${tool.name}: missing; install it with: ${installCmd([tool.pkg])}${aptGet ? '' : ` (Debian/Ubuntu; elsewhere your system's ${tool.pkg} package)`}`,
        );
    }
  }
  if (missing.length === 0) return true;

  const pkgs = [...new Set(missing.map((t) => t.pkg))];
  if (cannot) {
    say(`test tools: ${missing.length} missing and ${cannot}: nothing run. All at once: ${sudo}apt-get update && ${installCmd(pkgs)}`);
    return false;
  }
  // apt's own output goes to stderr: stdout keeps one line per tool.
  const apt = (args) =>
    spawnSync(aptGet, args, { env: { ...env, DEBIAN_FRONTEND: 'noninteractive' }, stdio: ['ignore', 2, 2] }).status ?? 1;
  const update = apt(['-q', 'update']);
  if (update !== 0) say(`test tools: apt-get update failed (exit ${update}); installing from the current package lists`);
  const install = apt(['install', '-q', '-y', '--no-install-recommends', ...pkgs]);
  const still = missing.filter((t) => !t.find(env));
  if (install !== 0 || still.length) {
    if (install !== 0) say(`test tools: ${installCmd(pkgs)} failed (exit ${install})`);
    for (const t of still) say(`${t.name}: still missing after installing ${t.pkg}`);
    return still.length === 0;
  }
  return true;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  process.exit(preflight() ? 0 : 1);
}

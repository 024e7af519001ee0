/**
 * `pnpm test`'s preflight (scripts/test-tools.mjs, issue 15): before the first test, every outside
 * tool a test runs is checked, one line each; missing ones are installed as root with apt-get
 * (one update, one install); where that cannot be done nothing runs: one line per missing tool
 * with the command that installs it, exit 1, and the `0 passed, 1 failed` line CI reads.
 * The machine's packages are never touched: tools are hidden by a PATH of fakes (the ones found
 * outside PATH pointed at fakes through the overrides their tests honour), and apt-get is a fake
 * that records its calls.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { REPO_ROOT, type Teardownable } from '@hatch/testing';
import { run } from './tools.js';

interface ToolsModule {
  TOOLS: Array<{ name: string; pkg: string }>;
}
const { TOOLS } = (await import(pathToFileURL(path.join(REPO_ROOT, 'scripts/test-tools.mjs')).href)) as ToolsModule;

const FAKE = '#!/bin/sh\nexit 0\n';

/** A machine with only `onPath` (plus Chromium, nats-server and PostgreSQL's binaries) as fakes. */
function fakeMachine(t: Teardownable, onPath: string[]) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hatch-preflight-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const bin = path.join(dir, 'bin');
  const pg = path.join(dir, 'pg');
  fs.mkdirSync(bin);
  fs.mkdirSync(pg);
  for (const cmd of onPath) fs.writeFileSync(path.join(bin, cmd), FAKE, { mode: 0o755 });
  for (const cmd of ['initdb', 'pg_ctl']) fs.writeFileSync(path.join(pg, cmd), FAKE, { mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'chromium'), FAKE, { mode: 0o755 });
  const env: NodeJS.ProcessEnv = {
    HOME: os.tmpdir(),
    PATH: bin,
    HATCH_CHROMIUM: path.join(dir, 'chromium'),
    HATCH_NATS_SERVER_BIN: path.join(bin, 'nats-server'),
    HATCH_PG_BIN: pg,
    APT_LOG: path.join(dir, 'apt.log'),
    FAKE_BIN: bin,
  };
  const aptCalls = () => (fs.existsSync(env.APT_LOG!) ? fs.readFileSync(env.APT_LOG!, 'utf8').trim().split('\n') : []);
  return { bin, env, aptCalls };
}

/** An apt-get that records `$DEBIAN_FRONTEND $*`, then "installs" the fakes of shellcheck and kubectl, or fails with `code`. */
function fakeAptGet(bin: string, code = 0): void {
  const script = [
    '#!/bin/sh',
    'echo "$DEBIAN_FRONTEND $*" >>"$APT_LOG"',
    `[ ${code} = 0 ] || exit ${code}`,
    'PATH=/usr/bin:/bin',
    '[ "$1" = install ] || exit 0',
    'for p in "$@"; do',
    '  case "$p" in shellcheck) c=shellcheck ;; kubernetes-client) c=kubectl ;; *) continue ;; esac',
    `  printf '#!/bin/sh\\nexit 0\\n' >"$FAKE_BIN/$c"; chmod 755 "$FAKE_BIN/$c"`,
    'done',
  ].join('\n');
  fs.writeFileSync(path.join(bin, 'apt-get'), `${script}\n`, { mode: 0o755 });
}

const lines = (out: string) => out.split('\n').filter(Boolean);
const onePerTool = (t: { equal(found: unknown, wanted: unknown, message: string): unknown }, out: string) => {
  for (const tool of TOOLS) t.equal(lines(out).filter((l) => l.startsWith(`${tool.name}: `)).length, 1, `one line for ${tool.name}`);
};

// Everything but shellcheck and kubectl (the ones setup.test.ts and kustomize.test.ts need)
const ALL_BUT_TWO = ['docker-compose', 'nats-server', 'pg_createcluster', 'psql', 'git'];

t.test(
  'pnpm test where a tool is missing and cannot be installed: one line per missing tool with its install command, nothing run, exit 1, "0 passed, 1 failed"',
  async (t) => {
    const m = fakeMachine(t, ALL_BUT_TWO);
    fakeAptGet(m.bin);
    // HATCH_PREFLIGHT_NO_INSTALL=1 stands for "not root": installing is not an option.
    // One small test file as the argument: a runner without the preflight would run just that.
    const r = await run(process.execPath, ['scripts/test.mjs', 'packages/contracts/test/status.test.ts'], {
      cwd: REPO_ROOT,
      env: { ...m.env, HATCH_PREFLIGHT_NO_INSTALL: '1' },
      timeoutMs: 120_000,
    });
    t.equal(r.code, 1, `exit 1\n${r.stdout}\n${r.stderr}`);
    onePerTool(t, r.stdout);
    t.match(
      r.stdout,
      /^shellcheck: missing; install it with: (sudo )?apt-get install -y --no-install-recommends shellcheck$/m,
      'shellcheck: missing, and the command',
    );
    t.match(
      r.stdout,
      /^kubectl: missing; install it with: (sudo )?apt-get install -y --no-install-recommends kubernetes-client$/m,
      'kubectl: missing, and the Debian package that has it',
    );
    t.match(r.stdout, new RegExp(`^docker-compose: ok \\(${m.bin}/docker-compose\\)$`, 'm'), 'a tool on PATH: ok, where');
    t.match(r.stdout, /^test tools: 2 missing and installing is turned off .*nothing run/m, 'why nothing ran');
    t.same(m.aptCalls(), [], 'apt-get not called');
    t.notMatch(r.stdout, /TAP version|^ok \d|^not ok \d/m, 'no test ran');
    t.equal(lines(r.stdout).at(-1), '0 passed, 1 failed', 'the last line is the one CI reads');
  },
);

t.test('no apt-get: the same lines, each with the Debian command, and nothing run', async (t) => {
  const m = fakeMachine(t, ALL_BUT_TWO);
  const r = await run(process.execPath, ['scripts/test-tools.mjs'], { cwd: REPO_ROOT, env: m.env });
  t.equal(r.code, 1, `exit 1\n${r.stdout}\n${r.stderr}`);
  onePerTool(t, r.stdout);
  t.match(
    r.stdout,
    /^shellcheck: missing; install it with: (sudo )?apt-get install -y --no-install-recommends shellcheck \(Debian\/Ubuntu; elsewhere/m,
  );
  t.match(r.stdout, /^test tools: 2 missing and (not root|no apt-get on this system): nothing run/m);
});

t.test(
  'as root with apt-get: one update, one install of exactly the missing packages, then every tool ok; a second check installs nothing',
  { skip: process.getuid?.() !== 0 && 'the preflight installs only as root' },
  async (t) => {
    const m = fakeMachine(t, ALL_BUT_TWO);
    fakeAptGet(m.bin);
    const r = await run(process.execPath, ['scripts/test-tools.mjs'], { cwd: REPO_ROOT, env: m.env });
    t.equal(r.code, 0, `exit 0\n${r.stdout}\n${r.stderr}`);
    onePerTool(t, r.stdout);
    t.match(r.stdout, /^shellcheck: installing \(shellcheck\)$/m);
    t.match(r.stdout, /^kubectl: installing \(kubernetes-client\)$/m);
    t.same(
      m.aptCalls(),
      ['noninteractive -q update', 'noninteractive install -q -y --no-install-recommends shellcheck kubernetes-client'],
      'one update, one install, non-interactive',
    );

    const again = await run(process.execPath, ['scripts/test-tools.mjs'], { cwd: REPO_ROOT, env: m.env });
    t.equal(again.code, 0);
    t.equal(lines(again.stdout).filter((l) => / ok \(/.test(l)).length, TOOLS.length, 'every tool ok');
    t.equal(m.aptCalls().length, 2, 'apt-get not called again');
  },
);

t.test(
  'as root, apt-get failing: the failure and each tool still missing are named, exit 1',
  { skip: process.getuid?.() !== 0 && 'the preflight installs only as root' },
  async (t) => {
    const m = fakeMachine(t, ALL_BUT_TWO);
    fakeAptGet(m.bin, 100);
    const r = await run(process.execPath, ['scripts/test-tools.mjs'], { cwd: REPO_ROOT, env: m.env });
    t.equal(r.code, 1, `exit 1\n${r.stdout}\n${r.stderr}`);
    t.match(r.stdout, /^test tools: apt-get install -y --no-install-recommends shellcheck kubernetes-client failed \(exit 100\)$/m);
    t.match(r.stdout, /^shellcheck: still missing after installing shellcheck$/m);
    t.match(r.stdout, /^kubectl: still missing after installing kubernetes-client$/m);
  },
);

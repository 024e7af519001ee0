/**
 * ./setup.sh (issue 15): a missing prerequisite is refused before setup does anything else. Node
 * older than 20 (a fake `node` first in PATH) or no node at all (a PATH of basic tools only) stops
 * `./setup.sh --yes --no-start` with exactly one line on stderr naming the problem and the fix,
 * exit 1, and nothing written (.env, .secrets/, .hatch/).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { REPO_ROOT, type Teardownable } from '@hatch/testing';
import { run } from './tools.js';
import { setupEnv } from './setup-helpers.js';

/** A temporary directory holding a copy of setup.sh (it works in its own directory). */
function setupCopy(t: Teardownable): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hatch-setup-prereqs-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'repo'));
  fs.copyFileSync(path.join(REPO_ROOT, 'setup.sh'), path.join(dir, 'repo/setup.sh'));
  fs.chmodSync(path.join(dir, 'repo/setup.sh'), 0o755);
  return dir;
}

/** A bin directory with symlinks to the basic tools a shell script uses, and no node, npm or pnpm. */
async function basicBin(dir: string): Promise<string> {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  const tools = [
    'bash',
    'env',
    'dirname',
    'basename',
    'mkdir',
    'cat',
    'rm',
    'mv',
    'cp',
    'chmod',
    'mktemp',
    'head',
    'tail',
    'sed',
    'grep',
    'awk',
    'tr',
    'find',
    'id',
    'ps',
    'date',
    'sleep',
    'timeout',
    'touch',
    'uname',
    'setsid',
  ];
  for (const tool of tools) {
    const r = await run('sh', ['-c', `command -v ${tool}`]);
    const where = r.stdout.trim();
    if (r.code === 0 && where.startsWith('/')) fs.symlinkSync(where, path.join(bin, tool));
  }
  return bin;
}

const written = (repo: string) => ['.env', '.secrets', '.hatch'].filter((f) => fs.existsSync(path.join(repo, f)));

/** Runs `./setup.sh --yes --no-start` in `repo`; asserts exit 1 with exactly one line on stderr, and returns that line. */
async function refusalLine(t: Test, repo: string, env: ReturnType<typeof setupEnv>): Promise<string> {
  const r = await run('./setup.sh', ['--yes', '--no-start'], { cwd: repo, env, timeoutMs: 60_000 });
  t.equal(r.code, 1, `exit 1\n${r.stdout}\n${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  t.equal(lines.length, 1, `exactly one line on stderr: ${r.stderr}`);
  return lines[0] ?? '';
}

t.test('Node.js 18 first in PATH: one line naming the version found and 20, exit 1, nothing written', async (t) => {
  const dir = setupCopy(t);
  const fakeBin = path.join(dir, 'fake-node');
  fs.mkdirSync(fakeBin);
  // answers the ways a script asks a node its version; anything else fails as an old node would
  fs.writeFileSync(
    path.join(fakeBin, 'node'),
    [
      '#!/bin/sh',
      'case "$1" in',
      '  --version | -v) echo v18.19.0 ;;',
      '  -p | --print | -e | --eval) case "$*" in *process.versions.node*) echo 18.19.0 ;; *process.version*) echo v18.19.0 ;; *) exit 1 ;; esac ;;',
      '  *) exit 1 ;;',
      'esac',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  const env = setupEnv({ PATH: `${fakeBin}:${process.env.PATH ?? ''}` });
  const repo = path.join(dir, 'repo');
  const line = await refusalLine(t, repo, env);
  t.match(line, /^setup: /, 'it says it is setup');
  t.match(line, /18\.19\.0/, 'it names the version found');
  t.match(line, /Node\.js 20\b/, 'it names the version needed');
  t.match(line, /nodejs\.org|nvm|package manager/, 'it says how to fix it');
  t.same(written(repo), [], 'nothing written (.env, .secrets/, .hatch/)');
});

t.test('no node at all: one line saying Node.js 20 is needed and how to install it, exit 1, nothing written', async (t) => {
  const dir = setupCopy(t);
  const bin = await basicBin(dir);
  const env = setupEnv({ PATH: bin });
  const check = await run('bash', ['-c', 'command -v node || echo none'], { env });
  t.equal(check.stdout.trim(), 'none', 'no node in this PATH');
  const repo = path.join(dir, 'repo');
  const line = await refusalLine(t, repo, env);
  t.match(line, /^setup: /, 'it says it is setup');
  t.match(line, /Node\.js 20\b.*not found/, 'it names the missing prerequisite and the version needed');
  t.match(line, /nodejs\.org/, 'it says where to get it');
  t.same(written(repo), [], 'nothing written (.env, .secrets/, .hatch/)');
});

t.test('a node that does not run: one line, exit 1, nothing written', async (t) => {
  const dir = setupCopy(t);
  const fakeBin = path.join(dir, 'broken-node');
  fs.mkdirSync(fakeBin);
  fs.writeFileSync(path.join(fakeBin, 'node'), '#!/bin/sh\necho "node: cannot execute" >&2\nexit 126\n', { mode: 0o755 });
  const env = setupEnv({ PATH: `${fakeBin}:${process.env.PATH ?? ''}` });
  const repo = path.join(dir, 'repo');
  const line = await refusalLine(t, repo, env);
  t.match(line, /^setup: Node\.js at .* does not run.*Node\.js 20\b/, 'it names the broken node and the version needed');
  t.same(written(repo), [], 'nothing written (.env, .secrets/, .hatch/)');
});

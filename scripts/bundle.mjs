#!/usr/bin/env node
/**
 * `pnpm build`, after `tsc -b`: each service's dist/main.js becomes ONE esbuild bundle of
 * src/main.ts with the workspace packages and their dependencies (what `node dist/main.js`, the
 * Docker image and `pnpm --filter … start` run). tsc still type-checks and emits the other
 * dist files (declarations, the packages' dist for tools).
 *
 * Why (bench P7): unbundled, a service loads ~1,000 ES modules (typebox alone 683, kysely 263)
 * plus 200-700 CommonJS ones; each ES module keeps its own module record, source text and
 * linking state. One file, tree-shaken, starts in a third of the time with ~15 MB less RSS.
 *
 *   node scripts/bundle.mjs               every service
 *   node scripts/bundle.mjs gateway       only these
 *
 * Kept outside the bundle (EXTERNAL): packages too big to carry whole whose own lazy loading
 * does better: the twilio SDK (≈ 10 MB of REST resources it requires only when first used);
 * and packages that read their own files at run time: @fastify/swagger-ui (Swagger UI's
 * scripts and styles, served from its package directory).
 * An external must be a direct dependency of the service, so that it resolves from
 * services/<name>/dist (pnpm's layout; `pnpm deploy` in the Dockerfile keeps it).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SERVICES = ['gateway', 'sms-sender', 'email-sender', 'realtime-bridge', 'provider-emulator'];
export const EXTERNAL = ['twilio', '@fastify/swagger-ui'];
/**
 * Commands a service's image runs besides its server, each bundled the same way into
 * dist/<name>.js: the gateway's first admin (`node dist/first-admin.js`, what `pnpm admin:first`
 * runs from a checkout), for `docker compose run --rm gateway node dist/first-admin.js` and
 * `kubectl exec deploy/gateway -- node dist/first-admin.js` (README "The first admin").
 */
export const COMMANDS = { gateway: { 'first-admin': 'src/first-admin-cli.ts' } };

// CommonJS dependencies call require() for Node built-ins; an ES module bundle needs a real one.
const BANNER =
  "import { createRequire as __hatchCreateRequire } from 'node:module';\nconst require = __hatchCreateRequire(import.meta.url);";

export async function bundleService(name) {
  const dir = path.join(ROOT, 'services', name);
  const outfile = path.join(dir, 'dist', 'main.js');
  const commands = Object.entries(COMMANDS[name] ?? {});
  await Promise.all([
    bundleEntry(dir, 'src/main.ts', outfile),
    ...commands.map(([out, src]) => bundleEntry(dir, src, path.join(dir, 'dist', `${out}.js`))),
  ]);
  return outfile;
}

/** One entry (a path under the service directory `dir`) bundled into `outfile`. */
export async function bundleEntry(dir, entry, outfile) {
  const deps = Object.keys(JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).dependencies ?? {});
  await build({
    entryPoints: [path.join(dir, entry)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // Workspace packages from their TypeScript source (as tsx runs them), not their dist.
    conditions: ['@hatch/source'],
    external: EXTERNAL.filter((p) => deps.includes(p)),
    banner: { js: BANNER },
    // Whitespace and syntax only: identifiers keep their names (error types in logs, stack traces).
    minifyWhitespace: true,
    minifySyntax: true,
    // A file beside it, never inline: resident only under --enable-source-maps.
    sourcemap: 'linked',
    legalComments: 'none',
    logLevel: 'warning',
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const only = process.argv.slice(2);
  const unknown = only.filter((n) => !SERVICES.includes(n));
  if (unknown.length) {
    process.stderr.write(`bundle: unknown service ${unknown.join(', ')} (known: ${SERVICES.join(', ')})\n`);
    process.exit(1);
  }
  const names = only.length ? only : SERVICES;
  await Promise.all(names.map(bundleService));
}

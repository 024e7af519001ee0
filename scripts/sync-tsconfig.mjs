#!/usr/bin/env node
// Writes each workspace package's tsconfig.json `references` from its package.json
// dependencies, so `pnpm build` (tsc -b) compiles packages in dependency order.
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const dirs = ['packages', 'services']
  .flatMap((d) => fs.readdirSync(path.join(root, d)).map((x) => `${d}/${x}`))
  .filter((d) => fs.existsSync(path.join(root, d, 'package.json')));
const check = process.argv.includes('--check');
const stale = [];
const write = (file, text) => {
  if (check) {
    if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== text) stale.push(path.relative(root, file));
  } else fs.writeFileSync(file, text);
};
const byName = new Map(dirs.map((d) => [JSON.parse(fs.readFileSync(path.join(root, d, 'package.json'), 'utf8')).name, d]));
for (const d of dirs) {
  const pj = JSON.parse(fs.readFileSync(path.join(root, d, 'package.json'), 'utf8'));
  const refs = Object.keys(pj.dependencies ?? {})
    .filter((n) => byName.has(n))
    .map((n) => ({ path: path.relative(d, byName.get(n)) }));
  const file = path.join(root, d, 'tsconfig.json');
  const ts = JSON.parse(fs.readFileSync(file, 'utf8'));
  ts.references = refs;
  write(file, JSON.stringify(ts, null, 2) + '\n');
}
write(path.join(root, 'tsconfig.build.json'), JSON.stringify({ files: [], references: dirs.map((d) => ({ path: d })) }, null, 2) + '\n');
if (stale.length) {
  process.stderr.write(`tsconfig references are stale (run node scripts/sync-tsconfig.mjs): ${stale.join(', ')}\n`);
  process.exit(1);
}

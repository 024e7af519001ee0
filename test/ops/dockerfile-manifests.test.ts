/**
 * The image build copies every workspace package's manifest before `pnpm install
 * --frozen-lockfile` (the cached dependency layer): a package left out of that list fails the
 * image build, a stale one (a package renamed or split) fails it too. Packages are added and
 * split over time, so the list is checked against the workspace rather than trusted.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { REPO_ROOT } from '@hatch/testing';

const workspace = ['packages', 'services']
  .flatMap((d) => fs.readdirSync(path.join(REPO_ROOT, d)).map((x) => `${d}/${x}`))
  .concat('web')
  .filter((d) => fs.existsSync(path.join(REPO_ROOT, d, 'package.json')))
  .sort();

t.test('the Dockerfile copies the manifest of every workspace package, and only of those', async (t) => {
  const df = fs.readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const copied = [...df.matchAll(/^COPY (\S+)\/package\.json \1\/$/gm)].map((m) => m[1] as string).sort();
  t.ok(workspace.length > 5, 'the workspace was read');
  t.same(copied, workspace);
});

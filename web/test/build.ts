/** The web UI's build, made on demand for browser tests (a fresh clone has no web/dist). */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const DIST = path.join(WEB_DIR, 'dist');

export function ensureBuilt(): void {
  if (fs.existsSync(path.join(DIST, 'index.html'))) return;
  const r = spawnSync(path.join(WEB_DIR, 'node_modules/.bin/vite'), ['build', '--logLevel', 'warn'], { cwd: WEB_DIR, stdio: 'inherit' });
  if (r.status !== 0 || !fs.existsSync(path.join(DIST, 'index.html'))) throw new Error('building the web UI (vite build) failed');
}

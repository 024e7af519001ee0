/**
 * The web UI's static files (web/dist, built by `pnpm build`) at `/`. Hashed assets
 * (`/assets/*`) are cached for a year; index.html is never cached, so a new build is picked up
 * at the next load. Any other GET that is not an API, webhook or probe path gets index.html
 * (client-side routes such as /c/<id>). Whether the build exists is checked per request: a
 * gateway started before `pnpm build` serves the UI once it is there, and until then answers
 * with a page that says how to build it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';

/** web/dist of this checkout: from services/gateway/{src,dist}/web.{ts,js}. */
export const DEFAULT_WEB_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../web/dist');

// The UI loads nothing from elsewhere: no CDN fonts, scripts or images (the API's Swagger UI
// at /api/docs neither: openapi.ts).
export const UI_CSP =
  "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'";

const NOT_BUILT = `<!doctype html><html lang="en"><meta charset="utf-8"><title>Hatch: web UI not built</title>
<body style="font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;line-height:1.5">
<h1>The web UI is not built</h1><p>This gateway is running, but it has no UI to serve yet.
Build it with <code>pnpm build</code> (or <code>pnpm --filter @hatch/web build</code>) in the repository, then reload this page.</p>
<p>The API is up at <code>/api/*</code>.</p></body></html>`;

const RESERVED = /^\/(api|webhooks)(\/|$)|^\/(healthz|readyz|metrics)$/;

export async function webRoutes(app: FastifyInstance, opts: { root?: string } = {}): Promise<void> {
  const root = path.resolve(opts.root ?? DEFAULT_WEB_ROOT);
  await app.register(fastifyStatic, { root, serve: false });

  const sendIndex = (reply: FastifyReply) => {
    if (!fs.existsSync(path.join(root, 'index.html'))) {
      return reply.code(503).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(NOT_BUILT);
    }
    return reply
      .header('cache-control', 'no-cache')
      .header('content-security-policy', UI_CSP)
      .sendFile('index.html', { cacheControl: false });
  };

  app.get('/', (_req, reply) => sendIndex(reply));
  app.get('/*', (req, reply) => {
    // The router's decoded path, not the raw target: `/%61pi/x` or `//api/x` is reserved too.
    const rel = (req.params as { '*': string })['*'];
    if (RESERVED.test(`/${rel.replace(/^\/+/, '')}`)) return reply.callNotFound();
    if (rel.startsWith('assets/')) {
      // Content-hashed names: a changed file gets a new name.
      return reply.sendFile(rel, { maxAge: 365 * 24 * 3600 * 1000, immutable: true });
    }
    const file = path.resolve(root, rel);
    if (rel && !rel.endsWith('/') && file.startsWith(root + path.sep) && fs.existsSync(file) && fs.statSync(file).isFile()) {
      return reply.sendFile(rel, { maxAge: 3600 * 1000 });
    }
    // A missing file with an extension is a 404, not the app (a broken asset link stays visible).
    if (/\.[a-z0-9]{1,8}$/i.test(rel)) return reply.callNotFound();
    return sendIndex(reply);
  });
}

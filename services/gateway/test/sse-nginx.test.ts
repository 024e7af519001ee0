/**
 * T8's proxy leg (docs/reliability.md#fault-tests): the SSE stream through a local nginx with
 * its DEFAULT response buffering (proxy_buffering on), the way most deployments put a proxy in front of the gateway.
 * Real nginx, real PostgreSQL, real NATS, the realtime-bridge as a process.
 *
 * (nginx 1.22 turned out to pass a small event through at once even without the gateway's
 * `X-Accel-Buffering: no`, so this cannot show that header at work; the gateway test checks the
 * header is sent, for proxies and nginx versions that do hold a partial buffer.)
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { freePort, waitFor, type Teardownable } from '@hatch/testing';
import { startBridge, TEST_TOKEN, testGateway } from './helpers.js';
import { openSse } from './sse-client.js';

const AUTH = { authorization: `Bearer ${TEST_TOKEN}` };
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p));
/** nginx cuts an upstream that sends nothing for this long; heartbeats must keep a stream open */
const PROXY_READ_TIMEOUT_S = 3;

/** nginx in the foreground on a free port, `routes` proxied by path prefix; stopped in teardown. */
async function spawnNginx(t: Teardownable, routes: Record<string, number>): Promise<string> {
  if (!NGINX) throw new Error("nginx is not installed (pnpm test's preflight, scripts/test-tools.mjs, installs it)");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hatch-nginx-'));
  const port = await freePort();
  const locations = Object.entries(routes)
    .map(
      ([prefix, upstream]) => `
      location ${prefix} {
        proxy_pass http://127.0.0.1:${upstream};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_read_timeout ${PROXY_READ_TIMEOUT_S}s;
      }`,
    )
    .join('\n');
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    `daemon off; master_process off; worker_processes 1;
    pid ${dir}/nginx.pid; error_log ${dir}/error.log warn;
    events { worker_connections 256; }
    http {
      access_log off;
      client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
      uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
      server { listen 127.0.0.1:${port}; ${locations} }
    }`,
  );
  const child = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  t.teardown(async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
      return fetch(`${url}/nginx-probe`).then(
        () => true,
        () => false,
      );
    },
    { timeoutMs: 10_000, message: 'nginx listening' },
  );
  return url;
}

t.test(
  'T8 through nginx with default buffering: events and heartbeats pass through, an idle stream outlives the proxy read timeout, 8 streams from one client',
  async (t) => {
    const { app, db, config } = await testGateway(t, { HATCH_SSE_HEARTBEAT_MS: '1000' });
    await startBridge(t, db, { url: config.NATS_URL, prefix: config.HATCH_NATS_PREFIX });
    await app.listen({ port: 0, host: '127.0.0.1' });

    const proxy = await spawnNginx(t, { '/': (app.server.address() as AddressInfo).port });
    const c = await openSse(`${proxy}/api/events`, AUTH);
    t.teardown(() => c.close());
    t.equal(c.status, 200);
    t.match(c.headers['content-type'], /^text\/event-stream/);
    t.notOk(c.headers['content-encoding'], 'no compression through the proxy');
    await c.waitFor((x) => x.of('connected').length === 1, 10_000, 'the connected event through nginx');

    const conv = randomUUID();
    await db.db
      .insertInto('conversations')
      .values({ id: conv, participants: [`a-${conv}`, `b-${conv}`], channel: 'chat' })
      .execute();
    await db.db
      .insertInto('messages')
      .values({
        id: randomUUID(),
        conversation_id: conv,
        from_contact: 'me',
        to_contact: 'you',
        body: 'hi',
        channel: 'chat',
        direction: 'outbound',
        status: 'stored',
      })
      .execute();
    await c.waitFor((x) => x.of('message_update').length === 1, 10_000, 'a single small event through nginx');

    // Idle now: only heartbeats flow. Past twice the proxy's read timeout the stream is still open.
    const since = c.comments.length;
    await c.waitFor(
      (x) => x.comments.length - since >= 2 * PROXY_READ_TIMEOUT_S + 1,
      20_000,
      'heartbeats through nginx for longer than twice its read timeout',
    );
    t.notOk(c.ended(), `the idle stream outlived nginx's ${PROXY_READ_TIMEOUT_S} s read timeout`);

    // Eight concurrent streams over HTTP/1.1 from one client: all accepted (browsers stop at 6 per
    // origin on HTTP/1.1; that limit is the browser's, README).
    const many = await Promise.all(Array.from({ length: 8 }, () => openSse(`${proxy}/api/events`, AUTH)));
    t.teardown(() => many.forEach((m) => m.close()));
    t.same(
      many.map((m) => m.status),
      Array(8).fill(200),
    );
    await Promise.all(many.map((m) => m.waitFor((x) => x.of('connected').length === 1, 10_000, 'connected')));
    t.pass('8 concurrent streams, each connected');
  },
);

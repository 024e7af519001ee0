/**
 * The workers' small HTTP server: /healthz (alive), /readyz (every dependency answers; 503 naming
 * the one that does not), /metrics (Prometheus text). node:http, no framework: it must answer
 * while the worker is busy, and it is all a worker serves.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '@hatch/log';

export type ReadinessCheck = () => Promise<void>;

export interface ReadinessReport {
  status: 'ready' | 'not_ready';
  checks: Record<string, { ok: boolean; error?: string }>;
  [extra: string]: unknown;
}

/** Runs every check at once, each bounded by `timeoutMs`. */
export async function runReadiness(checks: Record<string, ReadinessCheck>, timeoutMs = 2000): Promise<ReadinessReport> {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          check(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
        return [name, { ok: true }] as const;
      } catch (err) {
        return [name, { ok: false, error: (err as Error).message || String(err) }] as const;
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const checksOut = Object.fromEntries(entries);
  return { status: entries.every(([, r]) => r.ok) ? 'ready' : 'not_ready', checks: checksOut };
}

export interface HealthServerOptions {
  port: number;
  host?: string;
  checks: Record<string, ReadinessCheck>;
  registry: Registry;
  log: Logger;
  /** extra fields merged into the /readyz body (the bridge's role) */
  readyExtra?: () => Record<string, unknown>;
}

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

export async function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  const log = opts.log.child({ component: 'health' });
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(405, 'application/json', JSON.stringify({ success: false, error: 'method not allowed', code: 'METHOD_NOT_ALLOWED' }));
      return;
    }
    if (path === '/healthz') return send(200, 'application/json', JSON.stringify({ status: 'ok' }));
    if (path === '/readyz') {
      runReadiness(opts.checks)
        .then((r) => send(r.status === 'ready' ? 200 : 503, 'application/json', JSON.stringify({ ...r, ...(opts.readyExtra?.() ?? {}) })))
        .catch((err: unknown) => {
          log.error({ err }, 'readiness failed');
          send(503, 'application/json', JSON.stringify({ status: 'not_ready', checks: {} }));
        });
      return;
    }
    if (path === '/metrics') {
      opts.registry
        .metrics()
        .then((text) => send(200, opts.registry.contentType, text))
        .catch((err: unknown) => {
          log.error({ err }, 'metrics failed');
          send(500, 'text/plain', 'metrics unavailable');
        });
      return;
    }
    send(404, 'application/json', JSON.stringify({ success: false, error: `no route ${path}`, code: 'NOT_FOUND' }));
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { runReadiness, type ReadinessCheck } from '@hatch/service';

export interface HealthRouteDeps {
  checks: Record<string, ReadinessCheck>;
  registry: Registry;
  /** more to report with readiness (the realtime lag) */
  extra?: () => Record<string, unknown>;
}

/** /healthz: the process is alive. /readyz: PostgreSQL and NATS really answer (503 naming the one down). */
export function healthRoutes(app: FastifyInstance, deps: HealthRouteDeps): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const report = await runReadiness(deps.checks);
    return reply.code(report.status === 'ready' ? 200 : 503).send({ ...report, ...(deps.extra?.() ?? {}) });
  });
  app.get('/metrics', async (_req, reply) => {
    return reply.type(deps.registry.contentType).send(await deps.registry.metrics());
  });
}

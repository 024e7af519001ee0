import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { runReadiness, type ReadinessCheck } from '@hatch/service';
import { HealthBody, ReadinessBody } from '@hatch/contracts';

export interface HealthRouteDeps {
  checks: Record<string, ReadinessCheck>;
  registry: Registry;
  /** more to report with readiness (the realtime lag) */
  extra?: () => Record<string, unknown>;
}

/** /healthz: the process is alive. /readyz: PostgreSQL and NATS really answer (503 naming the one down). */
export function healthRoutes(app: FastifyInstance, deps: HealthRouteDeps): void {
  // The bodies are documented, not serialised by a schema: readiness adds the realtime report.
  app.get(
    '/healthz',
    {
      schema: { tags: ['operations'], operationId: 'liveness', summary: 'The process is alive' },
      config: { openapi: { responses: { 200: { ...HealthBody, description: 'alive' } } } },
    },
    async () => ({ status: 'ok' }),
  );
  const readiness = { ...ReadinessBody, additionalProperties: true };
  const readyDocs = {
    200: { ...readiness, description: 'ready' },
    503: { ...readiness, description: 'not ready: `checks` names the dependency down' },
  };
  app.get(
    '/readyz',
    {
      schema: { tags: ['operations'], operationId: 'readiness', summary: 'PostgreSQL, NATS and the event stream answer' },
      config: { openapi: { responses: readyDocs } },
    },
    async (_req, reply) => {
      const report = await runReadiness(deps.checks);
      return reply.code(report.status === 'ready' ? 200 : 503).send({ ...report, ...(deps.extra?.() ?? {}) });
    },
  );
  const metricsDocs = {
    200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } },
  };
  app.get(
    '/metrics',
    {
      schema: { tags: ['operations'], operationId: 'metrics', summary: 'Prometheus metrics' },
      config: { openapi: { responses: metricsDocs } },
    },
    async (_req, reply) => {
      return reply.type(deps.registry.contentType).send(await deps.registry.metrics());
    },
  );
}

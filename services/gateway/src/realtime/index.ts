/**
 * registerRealtime: the gateway's realtime piece — the hub (one events subscription per process)
 * and GET /api/events — in its own encapsulated plugin. Returns the hub (readiness, tests).
 */
import type { FastifyInstance } from 'fastify';
import type { NatsNames } from '@hatch/contracts';
import type { Db } from '@hatch/db';
import type { Logger } from '@hatch/log';
import type { Bus } from '@hatch/bus';
import type { Registry } from 'prom-client';
import type { RealtimeConfig } from './config.js';
import { RealtimeHub } from './hub.js';
import { eventsRoute, type EventsRouteOptions } from './events-route.js';
import type { Revocations } from '../revocations.js';

export interface RealtimeDeps {
  db: Db;
  bus: Bus;
  log: Logger;
  registry: Registry;
  names: NatsNames;
  config: RealtimeConfig;
  /** revoked credentials: their streams end (events-route.ts) */
  revocations: Revocations;
  /** expired credentials: their streams end within STREAM_CHECK_MS (stream-credentials.ts) */
  credentials: EventsRouteOptions['credentials'];
}

export async function registerRealtime(app: FastifyInstance, deps: RealtimeDeps): Promise<RealtimeHub> {
  const hub = new RealtimeHub({
    names: deps.names,
    bus: deps.bus,
    db: deps.db,
    log: deps.log,
    registry: deps.registry,
    clientQueueMax: deps.config.HATCH_SSE_CLIENT_QUEUE_MAX,
    maxClients: deps.config.HATCH_SSE_MAX_CLIENTS,
    queueBudgetBytes: deps.config.HATCH_SSE_QUEUE_BUDGET_BYTES,
    maxClientsPerPrincipal: deps.config.HATCH_SSE_MAX_CLIENTS_PER_PRINCIPAL,
    keepaliveMs: deps.config.HATCH_SSE_HEARTBEAT_MS,
  });
  hub.start();
  app.addHook('onClose', () => hub.stop());
  // Normally a few ms (one stream-info request); bounded so a slow NATS never blocks startup:
  // until synced, /readyz says so and new SSE clients get `retry:`.
  await hub.waitSynced(5000);
  await app.register(async (scope) => {
    await eventsRoute(scope, {
      hub,
      db: deps.db,
      log: deps.log,
      heartbeatMs: deps.config.HATCH_SSE_HEARTBEAT_MS,
      retryMs: deps.config.HATCH_SSE_RETRY_MS,
      revocations: deps.revocations,
      credentials: deps.credentials,
    });
  });
  return hub;
}

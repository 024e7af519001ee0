/**
 * runWorkerProcess: the shared outer shell of a worker's main.ts (sms-sender, email-sender,
 * realtime-bridge): the service's composition root opens its resources (`compose`, its
 * compose.ts), then its behaviour starts (`start`); the shell serves /healthz /readyz /metrics,
 * and on SIGTERM/SIGINT stops intake → drains → closes the resources → exits 0 within a bound.
 */
import type { Registry } from 'prom-client';
import type { WorkerSettings } from '@hatch/config';
import type { Db } from '@hatch/db';
import { configSecrets, createLogger, type Logger } from '@hatch/log';
import type { Bus } from '@hatch/bus';
import type { PoolAndBus } from './resources.js';
import { startHealthServer, type ReadinessCheck } from './health.js';
import { onShutdown } from './shutdown.js';

export interface WorkerProcessDeps {
  db: Db;
  bus: Bus;
  registry: Registry;
  log: Logger;
}

export interface RunningWorker {
  stop(): Promise<void>;
  /** extra readiness checks (e.g. the bridge's lock) */
  checks?: Record<string, ReadinessCheck>;
  readyExtra?: () => Record<string, unknown>;
}

/** The settings every worker has: @hatch/config's workerSettings, as its loaded config holds them. */
export type WorkerProcessSettings = WorkerSettings;

export interface WorkerProcessOptions<R extends PoolAndBus> {
  service: string;
  config: WorkerProcessSettings;
  shutdownTimeoutMs?: number;
  /** the service's composition root (its compose.ts) */
  compose(log: Logger): Promise<R>;
  start(deps: R & { log: Logger }): Promise<RunningWorker>;
}

export async function runWorkerProcess<R extends PoolAndBus>(opts: WorkerProcessOptions<R>): Promise<void> {
  const { config } = opts;
  // the service's whole config: its provider credentials are never written to a log line
  const log = createLogger({ service: opts.service, level: config.LOG_LEVEL, secrets: configSecrets(config) });
  let resources: R;
  try {
    resources = await opts.compose(log);
  } catch (err) {
    log.fatal({ err: { message: (err as Error).message } }, 'cannot reach a dependency at start');
    process.exit(1);
  }
  const { db, bus, registry } = resources;
  const worker = await opts.start({ ...resources, log });
  const health = await startHealthServer({
    port: config.HEALTH_PORT,
    registry,
    log,
    readyExtra: worker.readyExtra,
    checks: {
      database: async () => {
        await db.sql`SELECT 1`;
      },
      nats: () => bus.ping(),
      ...(worker.checks ?? {}),
    },
  });
  onShutdown(
    async () => {
      await worker.stop(); // stop intake, finish in-flight work
      await resources.close();
      await health.close();
    },
    { log, timeoutMs: opts.shutdownTimeoutMs ?? 9_000 },
  );
  log.info({ healthPort: health.port }, `${opts.service} ready`);
}

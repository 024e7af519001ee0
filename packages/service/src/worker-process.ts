/**
 * runWorkerProcess: the shared outer shell of a worker's main.ts (sms-sender, email-sender,
 * realtime-bridge): open the pool and the bus, start the worker's behaviour, serve
 * /healthz /readyz /metrics, and on SIGTERM/SIGINT stop intake → drain → close bus and pool →
 * exit 0 within a bound. The behaviour itself stays in the service (`start`).
 */
import type { Registry } from 'prom-client';
import { createDb, type Db } from '@hatch/db';
import { configSecrets, createLogger, type Logger } from '@hatch/log';
import { connectBus, type Bus } from '@hatch/bus';
import { createMetricsRegistry } from './metrics.js';
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

/** The settings every worker has (@hatch/config workerSettings), as its loaded config holds them. */
export interface WorkerProcessSettings {
  DATABASE_URL: string;
  DATABASE_POOL_MAX: number;
  NATS_URL: string;
  HEALTH_PORT: number;
  LOG_LEVEL: string;
}

export interface WorkerProcessOptions {
  service: string;
  config: WorkerProcessSettings;
  shutdownTimeoutMs?: number;
  start(deps: WorkerProcessDeps): Promise<RunningWorker>;
}

export async function runWorkerProcess(opts: WorkerProcessOptions): Promise<void> {
  const { config } = opts;
  // the service's whole config: its provider credentials are never written to a log line
  const log = createLogger({ service: opts.service, level: config.LOG_LEVEL, secrets: configSecrets(config) });
  const db = createDb(config.DATABASE_URL, { max: config.DATABASE_POOL_MAX, applicationName: `hatch-${opts.service}` });
  let bus: Bus;
  try {
    bus = await connectBus({ url: config.NATS_URL, name: `hatch-${opts.service}`, log });
  } catch (err) {
    log.fatal({ err: { message: (err as Error).message } }, 'cannot reach NATS at start');
    await db.close(1);
    process.exit(1);
  }
  const registry = createMetricsRegistry(opts.service);
  const worker = await opts.start({ db, bus, registry, log });
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
      await bus.close(3000);
      await db.close(3);
      await health.close();
    },
    { log, timeoutMs: opts.shutdownTimeoutMs ?? 9_000 },
  );
  log.info({ healthPort: health.port }, `${opts.service} ready`);
}

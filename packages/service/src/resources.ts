/**
 * openPoolAndBus: what every service's composition root (its compose.ts) opens first, the
 * PostgreSQL pool, the NATS connection and the metrics registry; close() shuts them in reverse
 * order. A failure while connecting closes what was already open before it is thrown.
 */
import type { Registry } from 'prom-client';
import type { DatabaseSettings, NatsSettings } from '@hatch/config';
import { createDb, type Db } from '@hatch/db';
import type { Logger } from '@hatch/log';
import { connectBus, type Bus } from '@hatch/bus';
import { createMetricsRegistry } from './metrics.js';

/** The settings it reads: @hatch/config's database and NATS settings, as every service has them. */
export type PoolAndBusSettings = DatabaseSettings & NatsSettings;

export interface PoolAndBus {
  db: Db;
  bus: Bus;
  registry: Registry;
  /** closes the bus, then the pool */
  close(): Promise<void>;
}

/** `prepare` runs once connected (e.g. ensureStreams); if it fails, everything is closed again. */
export async function openPoolAndBus(
  service: string,
  config: PoolAndBusSettings,
  log: Logger,
  prepare?: (bus: Bus) => Promise<void>,
): Promise<PoolAndBus> {
  const db = createDb(config.DATABASE_URL, { max: config.DATABASE_POOL_MAX, applicationName: `hatch-${service}` });
  let bus: Bus | undefined;
  try {
    bus = await connectBus({ url: config.NATS_URL, replicas: config.HATCH_STREAM_REPLICAS, name: `hatch-${service}`, log });
    await prepare?.(bus);
  } catch (err) {
    await bus?.close(1000);
    await db.close(1);
    throw err;
  }
  const connected = bus;
  return {
    db,
    bus: connected,
    registry: createMetricsRegistry(service),
    async close() {
      await connected.close(3000);
      await db.close(3);
    },
  };
}

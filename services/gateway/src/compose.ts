/** The composition root: opens the pool and the bus; close() shuts them in reverse order. */
import { createDb, type Db } from '@hatch/db';
import type { Logger } from '@hatch/log';
import { connectBus, ensureStreams, type Bus } from '@hatch/bus';
import { createMetricsRegistry } from '@hatch/service';
import { natsNames } from '@hatch/contracts';
import type { Registry } from 'prom-client';
import type { GatewayConfig } from './config.js';

export interface GatewayResources {
  db: Db;
  bus: Bus;
  registry: Registry;
  close(): Promise<void>;
}

export async function compose(config: GatewayConfig, log: Logger): Promise<GatewayResources> {
  const db = createDb(config.DATABASE_URL, { max: config.DATABASE_POOL_MAX, applicationName: 'hatch-gateway' });
  let bus: Bus;
  try {
    bus = await connectBus({ url: config.NATS_URL, name: 'hatch-gateway', log });
    await ensureStreams(bus.jsm, natsNames(config.HATCH_NATS_PREFIX));
  } catch (err) {
    await db.close(1);
    throw err;
  }
  const registry = createMetricsRegistry('gateway');
  return {
    db,
    bus,
    registry,
    async close() {
      await bus.close(3000);
      await db.close(3);
    },
  };
}

/** The composition root: opens the pool and the bus (and the streams); close() shuts them in reverse order. */
import { natsNames } from '@hatch/contracts';
import type { Logger } from '@hatch/log';
import { ensureStreams } from '@hatch/bus';
import { openPoolAndBus, type PoolAndBus } from '@hatch/service';
import type { GatewayConfig } from './config.js';

export type GatewayResources = PoolAndBus;

export function compose(config: GatewayConfig, log: Logger): Promise<GatewayResources> {
  return openPoolAndBus('gateway', config, log, (bus) => ensureStreams(bus.jsm, natsNames(config.HATCH_NATS_PREFIX), {}, bus.replicas));
}

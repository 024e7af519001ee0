/**
 * The composition root: opens the pool, the bus (and the events stream), and hands the bridge a
 * factory for its dedicated connections; close() shuts the bus and the pool in reverse order. The
 * dedicated connections are the bridge's own: it ends them when it steps down or stops.
 */
import postgres from 'postgres';
import { natsNames } from '@hatch/contracts';
import { DEFAULT_QUERY_TIMEOUT_MS, serverTimeouts } from '@hatch/db';
import type { Logger } from '@hatch/log';
import { ensureStreams } from '@hatch/bus';
import { openPoolAndBus, type PoolAndBus } from '@hatch/service';
import type { OpenConnection } from './bridge.js';
import type { BridgeConfig } from './config.js';

export interface BridgeResources extends PoolAndBus {
  openConnection: OpenConnection;
}

/**
 * A dedicated single connection (the lock's or LISTEN's): never recycled by a pool, since
 * closing the lock's connection is what hands the lock to a standby (docs/realtime.md#one-active-bridge).
 */
export function dedicatedConnection(url: string, ...[purpose, hooks]: Parameters<OpenConnection>): postgres.Sql {
  return postgres(url, {
    max: 1,
    idle_timeout: 0,
    max_lifetime: null,
    connect_timeout: 5,
    keep_alive: 10,
    // the server-side bounds of every pooled connection too (@hatch/db serverTimeouts)
    connection: { application_name: `hatch-realtime-bridge-${purpose}`, ...serverTimeouts(DEFAULT_QUERY_TIMEOUT_MS) },
    onnotice: () => {},
    ...(hooks?.onnotify ? { onnotify: hooks.onnotify } : {}),
    ...(hooks?.onclose ? { onclose: hooks.onclose } : {}),
  } as postgres.Options<Record<string, never>>);
}

export async function compose(config: BridgeConfig, log: Logger): Promise<BridgeResources> {
  const core = await openPoolAndBus('realtime-bridge', config, log, (bus) =>
    ensureStreams(bus.jsm, natsNames(config.HATCH_NATS_PREFIX), {}, bus.replicas),
  );
  return { ...core, openConnection: (purpose, hooks) => dedicatedConnection(config.DATABASE_URL, purpose, hooks) };
}

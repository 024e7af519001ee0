/** realtime-bridge: relays the change journal onto NATS (one active replica; see bridge.ts). */
import postgres from 'postgres';
import { natsNames } from '@hatch/contracts';
import { DEFAULT_QUERY_TIMEOUT_MS, serverTimeouts } from '@hatch/db';
import { ensureStreams } from '@hatch/bus';
import { runWorkerProcess } from '@hatch/service';
import { loadBridgeConfig } from './config.js';
import { startBridge } from './bridge.js';

const config = loadBridgeConfig();
await runWorkerProcess({
  service: 'realtime-bridge',
  config,
  start: async (deps) => {
    await ensureStreams(deps.bus.jsm, natsNames(config.HATCH_NATS_PREFIX));
    const bridge = startBridge(
      {
        ...deps,
        // Dedicated single connections (the lock's and LISTEN's): never recycled by the pool,
        // since closing the lock's connection is what hands the lock to a standby.
        openConnection: (purpose, hooks) =>
          postgres(config.DATABASE_URL, {
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
          } as postgres.Options<Record<string, never>>),
      },
      {
        natsPrefix: config.HATCH_NATS_PREFIX,
        batchSize: config.HATCH_BRIDGE_BATCH_SIZE,
        pollIntervalMs: config.HATCH_BRIDGE_POLL_INTERVAL_MS,
        lockRetryMs: config.HATCH_BRIDGE_LOCK_RETRY_MS,
        heartbeatMs: config.HATCH_BRIDGE_HEARTBEAT_MS,
        retentionMs: config.HATCH_EVENT_RETENTION_HOURS * 3600 * 1000,
      },
    );
    return { stop: () => bridge.stop(), readyExtra: () => ({ role: bridge.role(), position: bridge.position() }) };
  },
});

/** realtime-bridge: config → compose → the bridge (one active replica; docs/realtime.md) → health; SIGTERM → stop. */
import { runWorkerProcess } from '@hatch/service';
import { loadBridgeConfig } from './config.js';
import { compose } from './compose.js';
import { startBridge } from './bridge.js';

const config = loadBridgeConfig();
await runWorkerProcess({
  service: 'realtime-bridge',
  config,
  compose: (log) => compose(config, log),
  start: async (deps) => {
    const bridge = startBridge(deps, {
      natsPrefix: config.HATCH_NATS_PREFIX,
      batchSize: config.HATCH_BRIDGE_BATCH_SIZE,
      pollIntervalMs: config.HATCH_BRIDGE_POLL_INTERVAL_MS,
      lockRetryMs: config.HATCH_BRIDGE_LOCK_RETRY_MS,
      heartbeatMs: config.HATCH_BRIDGE_HEARTBEAT_MS,
      retentionMs: config.HATCH_EVENT_RETENTION_HOURS * 3600 * 1000,
      relayStallMs: config.HATCH_BRIDGE_RELAY_STALL_MS,
    });
    return {
      stop: () => bridge.stop(),
      // not only the role: an active bridge that cannot read the journal, or a replica whose
      // lock attempts or takeovers fail, is not ready
      checks: {
        relay: async () => {
          const h = bridge.health();
          if (!h.ok) throw new Error(h.reason);
        },
      },
      readyExtra: () => {
        const h = bridge.health();
        return { role: bridge.role(), position: bridge.position(), last_read_age_ms: h.lastReadAgeMs, failures: h.failures };
      },
    };
  },
});

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
    });
    return { stop: () => bridge.stop(), readyExtra: () => ({ role: bridge.role(), position: bridge.position() }) };
  },
});

/** realtime-bridge: relays the change journal onto NATS (the relay loop arrives with issue 6). */
import { createLogger } from '@hatch/log';
import { runWorkerProcess } from '@hatch/runtime';
import { loadBridgeConfig } from './config.js';

const config = loadBridgeConfig();
const log = createLogger({ service: 'realtime-bridge', level: config.LOG_LEVEL });
await runWorkerProcess({
  service: 'realtime-bridge',
  log,
  databaseUrl: config.DATABASE_URL,
  poolMax: config.DATABASE_POOL_MAX,
  natsUrl: config.NATS_URL,
  healthPort: config.HEALTH_PORT,
  start: async () => ({ stop: async () => {} }),
});

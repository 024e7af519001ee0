/** gateway: config → logger → resources → app → listen; SIGTERM/SIGINT → graceful stop. */
import { createLogger } from '@hatch/log';
import { onShutdown } from '@hatch/runtime';
import { loadGatewayConfig } from './config.js';
import { compose, type GatewayResources } from './compose.js';
import { build } from './app.js';

const config = loadGatewayConfig();
const log = createLogger({ service: 'gateway', level: config.LOG_LEVEL });
let resources: GatewayResources;
try {
  resources = await compose(config, log);
} catch (err) {
  log.fatal({ err: { message: (err as Error).message } }, 'cannot reach a dependency at start');
  process.exit(1);
}
const app = await build({ config, log, ...resources });
onShutdown(
  async () => {
    await app.close(); // stops intake; preClose hooks end long-lived streams
    await resources.close();
  },
  { log, timeoutMs: 10_000 },
);
await app.listen({ port: config.PORT, host: config.HOST });
log.info({ port: config.PORT, publicUrl: config.PUBLIC_URL }, 'gateway ready');

/** email-sender: consumes email jobs and sends them through SendGrid (the job loop arrives with issue 7). */
import { createLogger } from '@hatch/log';
import { runWorkerProcess } from '@hatch/runtime';
import { loadEmailSenderConfig } from './config.js';

const config = loadEmailSenderConfig();
const log = createLogger({ service: 'email-sender', level: config.LOG_LEVEL });
await runWorkerProcess({
  service: 'email-sender',
  log,
  databaseUrl: config.DATABASE_URL,
  poolMax: config.DATABASE_POOL_MAX,
  natsUrl: config.NATS_URL,
  healthPort: config.HEALTH_PORT,
  start: async () => ({ stop: async () => {} }),
});

/** gateway: config → logger → resources → app → listen; SIGTERM/SIGINT → graceful stop. */
import { configSecrets, createLogger } from '@hatch/log';
import { onShutdown } from '@hatch/service';
import { loadGatewayConfig } from './config.js';
import { compose, type GatewayResources } from './compose.js';
import { build } from './app.js';
import { cgroupMemoryLimit, worstCaseMemory } from './memory-budget.js';
import { SCRYPT_PARAMS } from './passwords.js';

const config = loadGatewayConfig();
const log = createLogger({ service: 'gateway', level: config.LOG_LEVEL, secrets: configSecrets(config) });
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
// Every bounded buffer full at once must fit the container's limit (memory-budget.ts).
const worst = worstCaseMemory(config);
const limit = cgroupMemoryLimit();
if (limit !== undefined && worst.bytes > limit) {
  log.warn(
    { worstCaseMiB: Math.round(worst.bytes / 2 ** 20), memoryLimitMiB: Math.round(limit / 2 ** 20), terms: worst.terms },
    'the worst case of these settings exceeds the memory limit: lower HATCH_SSE_MAX_CLIENTS, HATCH_SSE_QUEUE_BUDGET_BYTES or HATCH_BODY_BYTES_IN_FLIGHT_MAX, or raise the limit',
  );
}
// Allowed so the tests hash in milliseconds; said out loud so nobody runs production with it.
if (config.HATCH_PASSWORD_SCRYPT_LOG2N < SCRYPT_PARAMS.ln) {
  log.warn(
    { HATCH_PASSWORD_SCRYPT_LOG2N: config.HATCH_PASSWORD_SCRYPT_LOG2N, owasp: SCRYPT_PARAMS.ln },
    `HATCH_PASSWORD_SCRYPT_LOG2N is below OWASP's ${SCRYPT_PARAMS.ln}: new password hashes are weaker than they should be; this setting is for tests only, never production`,
  );
}
log.info({ port: config.PORT, publicUrl: config.PUBLIC_URL }, 'gateway ready');

/**
 * `@hatch/gateway/testing`: what tests outside the gateway need to run one: a gateway app on a
 * fresh database and NATS (testGateway), the senders' shared pipeline (gateway + provider
 * emulator), and the pieces a test assembles itself (build, parseGatewayConfig, webRoutes).
 */
export { testGateway, TEST_TOKEN, type TestGateway } from './helpers.js';
export {
  pipeline,
  API_TOKEN,
  type Channel,
  type Emulator,
  type Gateway,
  type Log,
  type Pipeline,
  type PipelineOptions,
} from './pipeline.js';
export { build, type BuildOptions } from '../src/app.js';
export { parseGatewayConfig, type GatewayConfig } from '../src/config.js';
export { webRoutes } from '../src/web.js';

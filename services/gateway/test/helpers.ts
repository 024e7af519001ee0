/** Test helpers: a real gateway app (build) on a fresh database and real NATS. */
import type { Registry } from 'prom-client';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { createLogger } from '@hatch/log';
import { connectBus, ensureStreams, type Bus } from '@hatch/bus';
import { createMetricsRegistry } from '@hatch/service';
import {
  createTestDb,
  freePort,
  spawnService,
  testNats,
  type ServiceProcess,
  type Teardownable,
  type TestDb,
  type TestNats,
} from '@hatch/testing';
import { build, type BuildOptions } from '../src/app.js';
import { parseGatewayConfig, type GatewayConfig } from '../src/config.js';

export const TEST_TOKEN = 'test-token-0123456789abcdef';
/**
 * The scrypt cost (log2 N) test gateways hash passwords at: the lowest the config allows, so a
 * hash takes milliseconds, not the production ~0.3 s. A test that checks the production cost sets
 * HATCH_PASSWORD_SCRYPT_LOG2N: undefined (the config's default).
 */
export const TEST_SCRYPT_LOG2N = '10';

export interface TestGateway {
  app: FastifyInstance;
  config: GatewayConfig;
  db: TestDb;
  bus: Bus;
  auth: { authorization: string };
  names: TestNats['names'];
  nats: TestNats;
  /** the gateway's metrics */
  registry: Registry;
}

export async function testGateway(
  t: Teardownable,
  env: Record<string, string | undefined> = {},
  opts: {
    natsUrl?: string;
    build?: BuildOptions;
    /** another replica on this gateway's database and NATS names */ replicaOf?: TestGateway;
  } = {},
): Promise<TestGateway> {
  const db = opts.replicaOf?.db ?? (await createTestDb(t));
  const nats = opts.replicaOf?.nats ?? testNats(t, { url: opts.natsUrl });
  const config = parseGatewayConfig({
    DATABASE_URL: db.url,
    NATS_URL: nats.url,
    HATCH_API_TOKEN: TEST_TOKEN,
    HATCH_NATS_PREFIX: nats.prefix,
    PUBLIC_URL: 'https://hatch.example.test',
    LOG_LEVEL: 'silent',
    HATCH_PASSWORD_SCRYPT_LOG2N: TEST_SCRYPT_LOG2N,
    ...env,
  });
  const log = createLogger({ service: 'gateway', level: config.LOG_LEVEL, pretty: false });
  const bus = await connectBus({ url: config.NATS_URL, name: 'gateway-test', log });
  await ensureStreams(bus.jsm, nats.names);
  const registry = createMetricsRegistry('gateway');
  const app = await build({ config, log, db, bus, registry }, opts.build);
  t.teardown(async () => {
    await app.close();
    await bus.close(1000);
  });
  return { app, config, db, bus, names: nats.names, nats, registry, auth: { authorization: `Bearer ${TEST_TOKEN}` } };
}

/** Listens on a free loopback port (security and protocol tests need a real socket); returns the port. */
export async function listening(g: { app: FastifyInstance }): Promise<number> {
  await g.app.listen({ port: 0, host: '127.0.0.1' });
  return (g.app.server.address() as AddressInfo).port;
}

/** The realtime-bridge as a real process on a test's database and NATS names, once it is the active one. */
export async function startBridge(
  t: Teardownable,
  db: { url: string },
  nats: { url: string; prefix: string },
  env: Record<string, string> = {},
): Promise<ServiceProcess> {
  const bridge = spawnService(t, 'realtime-bridge', {
    DATABASE_URL: db.url,
    NATS_URL: nats.url,
    HATCH_NATS_PREFIX: nats.prefix,
    HEALTH_PORT: '0',
    LOG_LEVEL: 'info',
    HATCH_BRIDGE_POLL_INTERVAL_MS: '200',
    ...env,
  });
  await bridge.waitForLog((l) => l.msg === 'became the active bridge', 30_000);
  return bridge;
}

/** The gateway as a real process on a free loopback port, once it is ready. */
export async function spawnGateway(
  t: Teardownable,
  db: { url: string },
  nats: { url: string; prefix: string },
  env: Record<string, string> = {},
): Promise<{ proc: ServiceProcess; port: number; url: string }> {
  const port = await freePort();
  const proc = spawnService(t, 'gateway', {
    DATABASE_URL: db.url,
    NATS_URL: nats.url,
    HATCH_NATS_PREFIX: nats.prefix,
    HATCH_API_TOKEN: TEST_TOKEN,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    ...env,
  });
  await proc.waitForLog((l) => l.msg === 'gateway ready', 30_000);
  return { proc, port, url: `http://127.0.0.1:${port}` };
}

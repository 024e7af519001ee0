/**
 * The set-up a sender's end-to-end tests share (`@hatch/gateway/testing`): a fresh database, NATS
 * names of its own (streams created), the provider emulator behind the real SDKs, a real gateway
 * listening on a port (it receives the emulator's signed callbacks), and teardown of all of it.
 * A channel (SMS, email) adds its provider settings, its worker and its own helpers on top.
 *
 * It lives with the gateway, the service it starts, so that the dependency points from the
 * senders' tests to the gateway and the emulator, never from a package under packages/ to a
 * service. Exported from source only (a test helper, never built).
 */
import { createDb, defaultMigrationsDir, migrate, type Db } from '@hatch/db';
import { createLogger } from '@hatch/log';
import { connectBus, ensureStreams, type Bus } from '@hatch/bus';
import { createMetricsRegistry } from '@hatch/service';
import { startEmulator, type Emulator, type EmulatorOptions } from '@hatch/provider-emulator';
import {
  boundedTeardown,
  createTestDb,
  freePort,
  spawnService,
  testNats,
  urlForDatabase,
  waitFor,
  type ServiceProcess,
  type Teardownable,
  type TestDb,
  type TestNats,
} from '@hatch/testing';
import { build } from '../src/app.js';
import { parseGatewayConfig } from '../src/config.js';

export type { Emulator };
export type Gateway = Awaited<ReturnType<typeof build>>;
export type Log = ReturnType<typeof createLogger>;

export const API_TOKEN = 'pipeline-test-token-0123456789';

export interface Channel {
  /** the worker's directory under services/ (spawnService) */
  service: 'sms-sender' | 'email-sender';
  /** the table whose rows the worker moves through `status` */
  table: 'messages' | 'emails';
  /** the emulator's settings that depend on where the gateway listens */
  emulator?(gatewayUrl: string): Pick<EmulatorOptions, 'sendgrid' | 'twilio'>;
  /** the gateway's settings for this channel's provider */
  gatewayEnv(emulator: Emulator): Record<string, string>;
  /** the worker's settings (child process) beyond database, NATS, health port and log level */
  workerEnv(emulator: Emulator, gatewayUrl: string): Record<string, string>;
}

export interface PipelineOptions {
  /** a NATS of the test's own (spawnNats) instead of the shared one */
  natsUrl?: string;
  /** a PostgreSQL server of the test's own (spawnPostgres): a `hatch` database is migrated on it */
  postgresUrl?: string;
  /** the emulator's delay before each status callback / event batch */
  callbackDelayMs?: number;
  /** the gateway's stalled-job rescue window (default: the production 10 min) */
  stalledAfterMs?: number;
}

export interface Pipeline {
  db: TestDb;
  nats: TestNats;
  bus: Bus;
  emulator: Emulator;
  gateway: Gateway;
  gatewayUrl: string;
  auth: { authorization: string };
  /** the in-process gateway's and worker's logger (HATCH_TEST_LOG=warn shows it) */
  log: Log;
  workerEnv: Record<string, string>;
  /** an authorised JSON POST to the real gateway */
  post(path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
  /** starts the channel's worker as a child process */
  spawnWorker(extraEnv?: Record<string, string>): ServiceProcess;
  /** polls the channel's row until its status is one of `statuses` */
  waitForStatus(id: string, statuses: string[], timeoutMs?: number): Promise<void>;
}

/** A migrated `hatch` database on a server the test owns (fault tests stop and restart it). */
async function ownDatabase(t: Teardownable, serverUrl: string): Promise<TestDb> {
  const url = urlForDatabase(serverUrl, 'hatch');
  await migrate({ url, dir: defaultMigrationsDir() });
  const handle: Db = createDb(url, { max: 10, applicationName: 'hatch-test', connectTimeoutSeconds: 2 });
  boundedTeardown(t, 'database pool close', () => handle.close(1));
  return { ...handle, url, name: 'hatch' };
}

export async function pipeline(t: Teardownable, channel: Channel, opts: PipelineOptions = {}): Promise<Pipeline> {
  const db = opts.postgresUrl ? await ownDatabase(t, opts.postgresUrl) : await createTestDb(t, { max: 10 });
  const nats = testNats(t, { url: opts.natsUrl });
  const log = createLogger({ service: 'test', level: process.env.HATCH_TEST_LOG ?? 'silent' });
  const bus = await connectBus({ url: nats.url, name: `${channel.service}-pipeline-test`, log });
  boundedTeardown(t, 'bus close', () => bus.close(1000));
  await ensureStreams(bus.jsm, nats.names);

  // PUBLIC_URL and the emulator's callback URLs name the gateway's port, so a port taken between
  // freePort() and listen() means a new emulator and a new gateway.
  const start = async (gatewayUrl: string, port: number) => {
    const emulator = await startEmulator({
      port: 0,
      callbackDelayMs: opts.callbackDelayMs ?? 20,
      logger: createLogger({ service: 'emulator', level: 'silent' }),
      ...channel.emulator?.(gatewayUrl),
    });
    try {
      const config = parseGatewayConfig({
        DATABASE_URL: db.url,
        NATS_URL: nats.url,
        HATCH_API_TOKEN: API_TOKEN,
        HATCH_NATS_PREFIX: nats.prefix,
        PUBLIC_URL: gatewayUrl,
        LOG_LEVEL: 'silent',
        ...channel.gatewayEnv(emulator),
      });
      const stalled = opts.stalledAfterMs
        ? { stalledAfterMs: opts.stalledAfterMs, stalledCheckMs: Math.min(1000, opts.stalledAfterMs) }
        : {};
      const gateway = await build(
        { config, log, db, bus, registry: createMetricsRegistry('gateway') },
        { outbox: { sweepIntervalMs: 200, graceMs: 500, ...stalled } },
      );
      try {
        await gateway.listen({ port, host: '127.0.0.1' });
      } catch (err) {
        await gateway.close();
        throw err;
      }
      return { emulator, gateway };
    } catch (err) {
      await emulator.stop();
      throw err;
    }
  };
  let started: Awaited<ReturnType<typeof start>>;
  let gatewayUrl: string;
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    gatewayUrl = `http://127.0.0.1:${port}`;
    try {
      started = await start(gatewayUrl, port);
      break;
    } catch (err) {
      if ((err as { code?: string }).code !== 'EADDRINUSE' || attempt >= 3) throw err;
    }
  }
  const { emulator, gateway } = started;
  boundedTeardown(t, 'gateway close', () => gateway.close());
  // Stopped before the gateway closes (teardowns run last-in first-out): a keep-alive webhook
  // connection from the emulator would otherwise hold gateway.close() until it times out.
  boundedTeardown(t, 'emulator stop', () => emulator.stop());

  const auth = { authorization: `Bearer ${API_TOKEN}` };
  const workerEnv = {
    DATABASE_URL: db.url,
    NATS_URL: nats.url,
    HATCH_NATS_PREFIX: nats.prefix,
    HEALTH_PORT: '0',
    LOG_LEVEL: 'info',
    ...channel.workerEnv(emulator, gatewayUrl),
  };
  const url = gatewayUrl;
  return {
    db,
    nats,
    bus,
    emulator,
    gateway,
    gatewayUrl,
    auth,
    log,
    workerEnv,
    async post(path, body) {
      const res = await fetch(`${url}${path}`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
    spawnWorker(extraEnv = {}) {
      return spawnService(t, channel.service, { ...workerEnv, ...extraEnv });
    },
    async waitForStatus(id, statuses, timeoutMs = 20_000) {
      let last = '';
      await waitFor(
        async () => {
          last = (await db.db.selectFrom(channel.table).select('status').where('id', '=', id).executeTakeFirstOrThrow()).status;
          return statuses.includes(last);
        },
        { timeoutMs, message: `${channel.table} row ${id} never reached ${statuses.join('/')} (last: ${last})` },
      );
    },
  };
}

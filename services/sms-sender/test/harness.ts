/**
 * The SMS pipeline harness: a fresh database, NATS names of its own, a provider emulator driven
 * through the real twilio SDK, a real gateway listening on a port (it receives the emulator's
 * signed status callbacks), and the sms-sender either in-process (startSmsWorker) or as a child
 * process (spawnService) for kill -9 tests.
 */
import type { FastifyInstance } from 'fastify';
import { startEmulator } from '@hatch/provider-emulator';
import { createLogger } from '@hatch/log';
import { createDb, defaultMigrationsDir, migrate } from '@hatch/db';
import { connectBus, createMetricsRegistry, ensureStreams, type Bus } from '@hatch/runtime';
import { createTestDb, freePort, spawnService, testNats, urlForDatabase, waitFor, type Teardownable, type TestDb, type TestNats, type ServiceProcess } from '@hatch/testing';
import { build } from '../../gateway/src/app.js';
import { parseGatewayConfig } from '../../gateway/src/config.js';
import { startSmsWorker, type SmsWorkerOptions } from '../src/worker.js';
import { createTwilioPort } from '../src/twilio-client.js';

export const API_TOKEN = 'pipeline-test-token-0123456789';

export type Emulator = Awaited<ReturnType<typeof startEmulator>>;

export interface Pipeline {
  db: TestDb;
  nats: TestNats;
  bus: Bus;
  emulator: Emulator;
  gateway: FastifyInstance;
  gatewayUrl: string;
  auth: { authorization: string };
  workerEnv: Record<string, string>;
  /** POST /api/send_message through the real gateway */
  send(to: string, body: string): Promise<{ status: number; body: Record<string, unknown> }>;
  /** starts the sms-sender in this process */
  startWorker(opts?: Partial<SmsWorkerOptions>): Promise<{ stop(): Promise<void> }>;
  /** starts the sms-sender as a child process */
  spawnWorker(extraEnv?: Record<string, string>): ServiceProcess;
  fault(body: Record<string, unknown>): Promise<void>;
  emulatorMessages(): Promise<Array<Record<string, unknown>>>;
  message(id: string): Promise<{ status: string; error_code: string | null; provider_sid: string | null; attempts: number }>;
  waitForStatus(id: string, statuses: string[], timeoutMs?: number): Promise<void>;
}

export const FAST: SmsWorkerOptions = {
  natsPrefix: '',
  publicUrl: '',
  concurrency: 8,
  ackWaitMs: 3000,
  maxDeliver: 4,
  backoffBaseMs: 200,
  backoffMaxMs: 2000,
};

export interface PipelineOptions {
  /** a NATS of the test's own (spawnNats) instead of the shared one */
  natsUrl?: string;
  /** a PostgreSQL server of the test's own (spawnPostgres): a `hatch` database is migrated on it */
  postgresUrl?: string;
  /** the emulator's delay before each status callback */
  callbackDelayMs?: number;
  /** the gateway's stalled-job rescue window (default: the production 10 min) */
  stalledAfterMs?: number;
}

/** A migrated `hatch` database on a server the test owns (fault tests stop and restart it). */
async function ownDatabase(t: Teardownable, serverUrl: string): Promise<TestDb> {
  const url = urlForDatabase(serverUrl, 'hatch');
  await migrate({ url, dir: defaultMigrationsDir() });
  const handle = createDb(url, { max: 10, applicationName: 'hatch-test', connectTimeoutSeconds: 2 });
  t.teardown(() => handle.close(1));
  return { ...handle, url, name: 'hatch' };
}

export async function pipeline(t: Teardownable, opts: PipelineOptions = {}): Promise<Pipeline> {
  const db = opts.postgresUrl ? await ownDatabase(t, opts.postgresUrl) : await createTestDb(t, { max: 10 });
  const nats = testNats(t, { url: opts.natsUrl });
  let port = await freePort();
  let gatewayUrl = `http://127.0.0.1:${port}`;
  const emulator = await startEmulator({ port: 0, callbackDelayMs: opts.callbackDelayMs ?? 20, logger: createLogger({ service: 'emulator', level: 'silent' }) });
  t.teardown(() => emulator.stop());
  // HATCH_TEST_LOG=warn shows the in-process gateway's and worker's logs when a test needs explaining
  const log = createLogger({ service: 'test', level: (process.env.HATCH_TEST_LOG ?? 'silent') as 'silent' });
  const bus = await connectBus({ url: nats.url, name: 'pipeline-test', log });
  t.teardown(() => bus.close(1000));
  await ensureStreams(bus.jsm, nats.names);
  const buildGateway = async () => {
    const config = parseGatewayConfig({
      DATABASE_URL: db.url,
      NATS_URL: nats.url,
      HATCH_API_TOKEN: API_TOKEN,
      HATCH_NATS_PREFIX: nats.prefix,
      PUBLIC_URL: gatewayUrl,
      TWILIO_PHONE_NUMBER: emulator.twilio.phoneNumber,
      TWILIO_AUTH_TOKEN: emulator.twilio.authToken,
      LOG_LEVEL: 'silent',
    });
    const gateway = await build({ config, log, db, bus, registry: createMetricsRegistry('gateway') }, {
      outbox: { sweepIntervalMs: 200, graceMs: 500, ...(opts.stalledAfterMs ? { stalledAfterMs: opts.stalledAfterMs, stalledCheckMs: Math.min(1000, opts.stalledAfterMs) } : {}) },
    });
    try {
      await gateway.listen({ port, host: '127.0.0.1' });
    } catch (err) {
      await gateway.close();
      throw err;
    }
    return gateway;
  };
  let gateway!: FastifyInstance;
  // PUBLIC_URL names the port, so a port taken between freePort() and listen() means a new gateway
  for (let attempt = 1; ; attempt++) {
    try {
      gateway = await buildGateway();
      break;
    } catch (err) {
      if ((err as { code?: string }).code !== 'EADDRINUSE' || attempt >= 3) throw err;
      port = await freePort();
      gatewayUrl = `http://127.0.0.1:${port}`;
    }
  }
  t.teardown(() => gateway.close());
  const auth = { authorization: `Bearer ${API_TOKEN}` };
  const workerEnv = {
    DATABASE_URL: db.url,
    NATS_URL: nats.url,
    HATCH_NATS_PREFIX: nats.prefix,
    PUBLIC_URL: gatewayUrl,
    TWILIO_ACCOUNT_SID: emulator.twilio.accountSid,
    TWILIO_AUTH_TOKEN: emulator.twilio.authToken,
    TWILIO_PHONE_NUMBER: emulator.twilio.phoneNumber,
    TWILIO_API_URL: emulator.url,
    HEALTH_PORT: '0',
    SMS_ACK_WAIT_MS: String(FAST.ackWaitMs),
    SMS_MAX_DELIVER: String(FAST.maxDeliver),
    SMS_BACKOFF_BASE_MS: String(FAST.backoffBaseMs),
    SMS_BACKOFF_MAX_MS: String(FAST.backoffMaxMs),
    TWILIO_TIMEOUT_MS: '2000',
    LOG_LEVEL: 'info',
  };
  const p: Pipeline = {
    db,
    nats,
    bus,
    emulator,
    gateway,
    gatewayUrl,
    auth,
    workerEnv,
    async send(to, body) {
      const res = await fetch(`${gatewayUrl}/api/send_message`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ to, body }) });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
    async startWorker(o = {}) {
      const twilio = createTwilioPort({ accountSid: emulator.twilio.accountSid, authToken: emulator.twilio.authToken, apiUrl: emulator.url, timeoutMs: 2000 });
      const w = await startSmsWorker({ db, bus, log, registry: createMetricsRegistry('sms-sender'), twilio }, { ...FAST, natsPrefix: nats.prefix, publicUrl: gatewayUrl, ...o });
      t.teardown(() => w.stop());
      return w;
    },
    spawnWorker(extraEnv = {}) {
      return spawnService(t, 'sms-sender', { ...workerEnv, ...extraEnv });
    },
    async fault(body) {
      const res = await fetch(`${emulator.url}/_emulator/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      if (!res.ok) throw new Error(`fault refused: ${res.status} ${await res.text()}`);
    },
    async emulatorMessages() {
      const res = await fetch(`${emulator.url}/_emulator/messages`);
      const j = (await res.json()) as { messages?: Array<Record<string, unknown>> } | Array<Record<string, unknown>>;
      return Array.isArray(j) ? j : j.messages ?? [];
    },
    async message(id) {
      return db.db.selectFrom('messages').select(['status', 'error_code', 'provider_sid', 'attempts']).where('id', '=', id).executeTakeFirstOrThrow();
    },
    async waitForStatus(id, statuses, timeoutMs = 20_000) {
      let last = '';
      await waitFor(
        async () => {
          last = (await p.message(id)).status;
          return statuses.includes(last);
        },
        { timeoutMs, message: `message ${id} never reached ${statuses.join('/')} (last: ${last})` },
      );
    },
  };
  return p;
}

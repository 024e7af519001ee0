/**
 * The email pipeline harness: a fresh database, NATS names of its own, a provider emulator
 * driven through the real @sendgrid/mail SDK that posts signed events to a real gateway
 * listening on a port (SENDGRID_WEBHOOK_PUBLIC_KEY = the emulator's key), and the email-sender
 * in-process (startEmailWorker) or as a child process (spawnService) for kill -9 tests.
 */
import { startEmulator } from '@hatch/provider-emulator';
import { createLogger } from '@hatch/log';
import { connectBus, createMetricsRegistry, ensureStreams, type Bus } from '@hatch/runtime';
import { createTestDb, freePort, spawnService, testNats, waitFor, type ServiceProcess, type Teardownable, type TestDb, type TestNats } from '@hatch/testing';
import type { Registry } from 'prom-client';
import { build } from '../../gateway/src/app.js';
import { parseGatewayConfig } from '../../gateway/src/config.js';
import { startEmailWorker, type EmailWorkerOptions } from '../src/worker.js';
import { createSendGridPort } from '../src/sendgrid-client.js';

export const API_TOKEN = 'email-pipeline-token-0123456789';
export const FROM = 'hatch@example.com';

export type Emulator = Awaited<ReturnType<typeof startEmulator>>;
type FastifyInstance = Awaited<ReturnType<typeof build>>;

export const FAST: Omit<EmailWorkerOptions, 'natsPrefix'> = {
  fromEmail: FROM,
  concurrency: 4,
  ackWaitMs: 3000,
  maxDeliver: 4,
  backoffBaseMs: 100,
  backoffMaxMs: 1000,
  sendTimeoutMs: 2000,
  unknownOutcomeWaitMs: 1000,
  authPauseMs: 1500,
  attachmentRetentionMs: 24 * 3600 * 1000,
};

export interface EmailPipeline {
  db: TestDb;
  nats: TestNats;
  bus: Bus;
  emulator: Emulator;
  gateway: FastifyInstance;
  gatewayUrl: string;
  auth: { authorization: string };
  workerEnv: Record<string, string>;
  send(body: Record<string, unknown>): Promise<string>;
  startWorker(opts?: Partial<EmailWorkerOptions>): Promise<{ stop(): Promise<void>; registry: Registry }>;
  spawnWorker(extraEnv?: Record<string, string>): ServiceProcess;
  email(id: string): Promise<{ status: string; error_code: string | null; provider_message_id: string | null; provider_response: unknown; attempts: number }>;
  waitForStatus(id: string, statuses: string[], timeoutMs?: number): Promise<void>;
  /** the job consumer has nothing pending or unacknowledged */
  waitForDrained(timeoutMs?: number): Promise<void>;
  /** emulator records of mail sends carrying this email id */
  sendsOf(id: string): ReturnType<Emulator['records']['emails']>;
}

export async function emailPipeline(t: Teardownable, opts: { callbackDelayMs?: number } = {}): Promise<EmailPipeline> {
  const db = await createTestDb(t, { max: 10 });
  const nats = testNats(t);
  const port = await freePort();
  const gatewayUrl = `http://127.0.0.1:${port}`;
  const emulator = await startEmulator({
    port: 0,
    callbackDelayMs: opts.callbackDelayMs ?? 20,
    sendgrid: { webhookUrl: `${gatewayUrl}/webhooks/sendgrid/events` },
    logger: createLogger({ service: 'emulator', level: 'silent' }),
  });
  const log = createLogger({ service: 'test', level: 'silent' });
  const bus = await connectBus({ url: nats.url, name: 'email-pipeline-test', log });
  t.teardown(() => bus.close(1000));
  await ensureStreams(bus.jsm, nats.names);
  const config = parseGatewayConfig({
    DATABASE_URL: db.url,
    NATS_URL: nats.url,
    HATCH_API_TOKEN: API_TOKEN,
    HATCH_NATS_PREFIX: nats.prefix,
    PUBLIC_URL: gatewayUrl,
    SENDGRID_WEBHOOK_PUBLIC_KEY: emulator.sendgrid.publicKeyBase64,
    LOG_LEVEL: 'silent',
  });
  const gateway = await build({ config, log, db, bus, registry: createMetricsRegistry('gateway') }, { outbox: { sweepIntervalMs: 200, graceMs: 500 } });
  await gateway.listen({ port, host: '127.0.0.1' });
  t.teardown(() => gateway.close());
  // Stopped before the gateway closes (teardowns run last-in first-out): a keep-alive webhook
  // connection from the emulator would otherwise hold gateway.close() until it times out.
  t.teardown(() => emulator.stop());
  const auth = { authorization: `Bearer ${API_TOKEN}` };
  const workerEnv = {
    DATABASE_URL: db.url,
    NATS_URL: nats.url,
    HATCH_NATS_PREFIX: nats.prefix,
    HEALTH_PORT: '0',
    SENDGRID_API_KEY: emulator.sendgrid.apiKey,
    SENDGRID_FROM_EMAIL: FROM,
    SENDGRID_API_URL: emulator.url,
    SENDGRID_TIMEOUT_MS: String(FAST.sendTimeoutMs),
    EMAIL_ACK_WAIT_MS: String(FAST.ackWaitMs),
    EMAIL_MAX_DELIVER: String(FAST.maxDeliver),
    EMAIL_BACKOFF_BASE_MS: String(FAST.backoffBaseMs),
    EMAIL_BACKOFF_MAX_MS: String(FAST.backoffMaxMs),
    EMAIL_UNKNOWN_OUTCOME_WAIT_MS: String(FAST.unknownOutcomeWaitMs),
    LOG_LEVEL: 'info',
  };
  const p: EmailPipeline = {
    db,
    nats,
    bus,
    emulator,
    gateway,
    gatewayUrl,
    auth,
    workerEnv,
    async send(body) {
      const res = await fetch(`${gatewayUrl}/api/send_email`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const json = (await res.json()) as { email_id?: string };
      if (res.status !== 202 || !json.email_id) throw new Error(`send_email answered ${res.status}: ${JSON.stringify(json)}`);
      return json.email_id;
    },
    async startWorker(o = {}) {
      const registry = createMetricsRegistry('email-sender');
      const sendgrid = createSendGridPort({ apiKey: emulator.sendgrid.apiKey, apiUrl: emulator.url, timeoutMs: o.sendTimeoutMs ?? FAST.sendTimeoutMs });
      const w = await startEmailWorker({ db, bus, log, registry, sendgrid }, { ...FAST, natsPrefix: nats.prefix, ...o });
      t.teardown(() => w.stop());
      return { stop: () => w.stop(), registry };
    },
    spawnWorker(extraEnv = {}) {
      return spawnService(t, 'email-sender', { ...workerEnv, ...extraEnv });
    },
    async email(id) {
      return db.db.selectFrom('emails').select(['status', 'error_code', 'provider_message_id', 'provider_response', 'attempts']).where('id', '=', id).executeTakeFirstOrThrow();
    },
    async waitForStatus(id, statuses, timeoutMs = 20_000) {
      let last = '';
      await waitFor(
        async () => {
          last = (await p.email(id)).status;
          return statuses.includes(last);
        },
        { timeoutMs, message: `email ${id} never reached ${statuses.join('/')} (last: ${last})` },
      );
    },
    async waitForDrained(timeoutMs = 20_000) {
      await waitFor(
        async () => {
          const info = await bus.jsm.consumers.info(nats.names.streams.jobs, nats.names.consumers.emailSender);
          return info.num_pending === 0 && info.num_ack_pending === 0;
        },
        { timeoutMs, message: 'email jobs never drained' },
      );
    },
    sendsOf(id) {
      return emulator.records.emails().filter((r) => (r.request as { custom_args?: Record<string, string> } | undefined)?.custom_args?.email_id === id);
    },
  };
  return p;
}

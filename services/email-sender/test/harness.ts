/**
 * The email pipeline harness: the shared pipeline (@hatch/gateway/testing: fresh database, NATS
 * names of its own, a real gateway listening on a port) with the provider emulator driven through
 * the real @sendgrid/mail SDK posting signed events to that gateway (SENDGRID_WEBHOOK_PUBLIC_KEY =
 * the emulator's key), plus the email-sender in-process (startEmailWorker) or as a child process
 * (spawnService) for kill -9 tests.
 */
import { createMetricsRegistry } from '@hatch/service';
import { boundedTeardown, waitFor, type Teardownable } from '@hatch/testing';
import { pipeline, type Emulator, type Pipeline } from '@hatch/gateway/testing';
import type { Registry } from 'prom-client';
import { startEmailWorker, type EmailWorkerOptions } from '../src/worker.js';
import { createSendGridPort } from '../src/sendgrid-client.js';

export { API_TOKEN, type Emulator } from '@hatch/gateway/testing';
export const FROM = 'hatch@example.com';

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

export interface EmailPipeline extends Pipeline {
  /** POST /api/send_email through the real gateway; the new email's id */
  send(body: Record<string, unknown>): Promise<string>;
  startWorker(opts?: Partial<EmailWorkerOptions>): Promise<{ stop(): Promise<void>; registry: Registry }>;
  email(id: string): Promise<{
    status: string;
    error_code: string | null;
    provider_message_id: string | null;
    provider_response: unknown;
    attempts: number;
  }>;
  /** the job consumer has nothing pending or unacknowledged */
  waitForDrained(timeoutMs?: number): Promise<void>;
  /** emulator records of mail sends carrying this email id */
  sendsOf(id: string): ReturnType<Emulator['records']['emails']>;
}

export async function emailPipeline(t: Teardownable, opts: { callbackDelayMs?: number } = {}): Promise<EmailPipeline> {
  const p = await pipeline(
    t,
    {
      service: 'email-sender',
      table: 'emails',
      emulator: (gatewayUrl) => ({ sendgrid: { webhookUrl: `${gatewayUrl}/webhooks/sendgrid/events` } }),
      gatewayEnv: (emulator) => ({ SENDGRID_WEBHOOK_PUBLIC_KEY: emulator.sendgrid.publicKeyBase64 }),
      workerEnv: (emulator) => ({
        SENDGRID_API_KEY: emulator.sendgrid.apiKey,
        SENDGRID_FROM_EMAIL: FROM,
        SENDGRID_API_URL: emulator.url,
        SENDGRID_TIMEOUT_MS: String(FAST.sendTimeoutMs),
        EMAIL_ACK_WAIT_MS: String(FAST.ackWaitMs),
        EMAIL_MAX_DELIVER: String(FAST.maxDeliver),
        EMAIL_BACKOFF_BASE_MS: String(FAST.backoffBaseMs),
        EMAIL_BACKOFF_MAX_MS: String(FAST.backoffMaxMs),
        EMAIL_UNKNOWN_OUTCOME_WAIT_MS: String(FAST.unknownOutcomeWaitMs),
      }),
    },
    opts,
  );
  const { db, bus, log, emulator, nats } = p;
  return {
    ...p,
    async send(body) {
      const res = await p.post('/api/send_email', body);
      const id = res.body.email_id;
      if (res.status !== 202 || typeof id !== 'string' || !id)
        throw new Error(`send_email answered ${res.status}: ${JSON.stringify(res.body)}`);
      return id;
    },
    async startWorker(o = {}) {
      const registry = createMetricsRegistry('email-sender');
      const sendgrid = createSendGridPort({
        apiKey: emulator.sendgrid.apiKey,
        apiUrl: emulator.url,
        timeoutMs: o.sendTimeoutMs ?? FAST.sendTimeoutMs,
      });
      const w = await startEmailWorker({ db, bus, log, registry, sendgrid }, { ...FAST, natsPrefix: nats.prefix, ...o });
      boundedTeardown(t, 'email worker stop', () => w.stop());
      return { stop: () => w.stop(), registry };
    },
    async email(id) {
      return db.db
        .selectFrom('emails')
        .select(['status', 'error_code', 'provider_message_id', 'provider_response', 'attempts'])
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
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
      return emulator.records
        .emails()
        .filter((r) => (r.request as { custom_args?: Record<string, string> } | undefined)?.custom_args?.email_id === id);
    },
  };
}

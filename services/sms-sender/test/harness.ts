/**
 * The SMS pipeline harness: the shared pipeline (@hatch/gateway/testing: fresh database, NATS
 * names of its own, the provider emulator driven through the real twilio SDK, a real gateway
 * listening on a port for the emulator's signed status callbacks) plus the sms-sender, either
 * in-process (startSmsWorker) or as a child process (spawnService) for kill -9 tests.
 */
import type { Registry } from 'prom-client';
import { createMetricsRegistry } from '@hatch/service';
import { boundedTeardown, type Teardownable } from '@hatch/testing';
import { pipeline as sharedPipeline, type Pipeline as SharedPipeline, type PipelineOptions } from '@hatch/gateway/testing';
import { startSmsWorker, type SmsWorkerOptions } from '../src/worker.js';
import { createTwilioPort } from '../src/twilio-client.js';

export { API_TOKEN, type Emulator, type PipelineOptions } from '@hatch/gateway/testing';

export interface Pipeline extends SharedPipeline {
  /** POST /api/send_message through the real gateway */
  send(to: string, body: string): Promise<{ status: number; body: Record<string, unknown> }>;
  /** starts the sms-sender in this process */
  startWorker(opts?: Partial<SmsWorkerOptions>): Promise<{ stop(): Promise<void>; registry: Registry }>;
  message(id: string): Promise<{ status: string; error_code: string | null; provider_sid: string | null; attempts: number }>;
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

export async function pipeline(t: Teardownable, opts: PipelineOptions = {}): Promise<Pipeline> {
  const p = await sharedPipeline(
    t,
    {
      service: 'sms-sender',
      table: 'messages',
      gatewayEnv: (emulator) => ({ TWILIO_PHONE_NUMBER: emulator.twilio.phoneNumber, TWILIO_AUTH_TOKEN: emulator.twilio.authToken }),
      workerEnv: (emulator, gatewayUrl) => ({
        PUBLIC_URL: gatewayUrl,
        TWILIO_ACCOUNT_SID: emulator.twilio.accountSid,
        TWILIO_AUTH_TOKEN: emulator.twilio.authToken,
        TWILIO_PHONE_NUMBER: emulator.twilio.phoneNumber,
        TWILIO_API_URL: emulator.url,
        SMS_ACK_WAIT_MS: String(FAST.ackWaitMs),
        SMS_MAX_DELIVER: String(FAST.maxDeliver),
        SMS_BACKOFF_BASE_MS: String(FAST.backoffBaseMs),
        SMS_BACKOFF_MAX_MS: String(FAST.backoffMaxMs),
        TWILIO_TIMEOUT_MS: '2000',
      }),
    },
    opts,
  );
  const { db, bus, log, emulator, nats, gatewayUrl } = p;
  return {
    ...p,
    send: (to, body) => p.post('/api/send_message', { to, body }),
    async startWorker(o = {}) {
      const twilio = createTwilioPort({
        accountSid: emulator.twilio.accountSid,
        authToken: emulator.twilio.authToken,
        apiUrl: emulator.url,
        timeoutMs: 2000,
      });
      const registry = createMetricsRegistry('sms-sender');
      const w = await startSmsWorker({ db, bus, log, registry, twilio }, { ...FAST, natsPrefix: nats.prefix, publicUrl: gatewayUrl, ...o });
      boundedTeardown(t, 'sms worker stop', () => w.stop());
      return { stop: () => w.stop(), registry };
    },
    async message(id) {
      return db.db
        .selectFrom('messages')
        .select(['status', 'error_code', 'provider_sid', 'attempts'])
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
    },
  };
}

/**
 * startEmulator(opts): the emulator as a library. Each test file starts its own on port 0 and
 * stops it in teardown; main.ts starts the service the same way from its config.
 */
import type { AddressInfo } from 'node:net';
import { createLogger, type Logger } from '@hatch/log';
import { buildApp } from './app.js';
import { Background } from './background.js';
import { FaultStore, parseFaultSpec, type Fault, type FaultSpec, type Provider } from './faults.js';
import { createSendGridState, type EmailRecord } from './sendgrid.js';
import { createSendGridSigner } from './signing.js';
import type { InboundResult } from './twilio.js';
import { createTwilioState, type InboundRecord, type MessageRecord } from './twilio-resource.js';
import type { InboundPlay } from './twilio-validation.js';
import { WebhookClient, type WebhookPolicy } from './webhook-client.js';

/** Defaults shared by the library and the service config (config.ts). */
export const DEFAULTS = {
  port: 5090,
  host: '127.0.0.1',
  accountSid: 'ACe3a1a700000000000000000000000000',
  authToken: 'emulator-auth-token-not-a-secret',
  phoneNumber: '+15005550006',
  inboundUrl: 'http://localhost:5002/webhooks/twilio/sms',
  apiKey: 'SG.emulator.dev-key',
  webhookUrl: 'http://localhost:5002/webhooks/sendgrid/events',
  callbackDelayMs: 300,
  callbackAttempts: 4,
  callbackRetryBaseMs: 500,
  callbackTimeoutMs: 10_000,
  maxRecords: 10_000,
  maxEmailBytes: 128 * 1024 * 1024,
} as const;

export interface EmulatorOptions {
  /** 0 picks a free port (tests) */
  port?: number;
  host?: string;
  logger?: Logger;
  twilio?: {
    accountSid?: string;
    authToken?: string;
    phoneNumber?: string;
    /** Hatch's inbound SMS webhook */
    inboundUrl?: string;
  };
  sendgrid?: {
    apiKey?: string;
    /** PEM of an EC P-256 private key; a key pair is generated when absent */
    signingKeyPem?: string;
    /** the Event Webhook URL; null posts no events */
    webhookUrl?: string | null;
  };
  /** between status steps / event batches, and before the first one */
  callbackDelayMs?: number;
  /** webhook attempts per callback or event batch, the first included */
  callbackAttempts?: number;
  /** first retry delay; doubles per retry */
  callbackRetryBaseMs?: number;
  callbackTimeoutMs?: number;
  /** cap of each record list (messages, emails, inbound); oldest dropped */
  maxRecords?: number;
  /** byte cap of the stored email bodies (attachments are large) */
  maxEmailBytes?: number;
  /** faults active from the start (EMULATOR_FAULTS) */
  faults?: FaultSpec[];
}

export interface Emulator {
  /** base URL: TWILIO_API_URL and SENDGRID_API_URL both point here */
  url: string;
  twilio: { accountSid: string; authToken: string; phoneNumber: string };
  sendgrid: { apiKey: string; publicKeyPem: string; publicKeyBase64: string };
  records: {
    messages(): MessageRecord[];
    emails(): EmailRecord[];
    inbound(): InboundRecord[];
    clear(): void;
  };
  faults: {
    add(spec: FaultSpec): Fault;
    list(provider?: Provider): Fault[];
    reset(provider?: Provider): void;
  };
  /** POSTs a signed inbound SMS to Hatch (the `/_emulator/twilio/inbound` behaviour) */
  playInbound(p: InboundPlay): Promise<InboundResult>;
  stop(): Promise<void>;
}

export async function startEmulator(opts: EmulatorOptions = {}): Promise<Emulator> {
  const log = opts.logger ?? createLogger({ service: 'provider-emulator', level: 'warn' });
  const bg = new Background(log);
  const faults = new FaultStore();
  for (const spec of opts.faults ?? []) faults.add(parseFaultSpec(spec));

  const maxRecords = opts.maxRecords ?? DEFAULTS.maxRecords;
  const callbackDelayMs = opts.callbackDelayMs ?? DEFAULTS.callbackDelayMs;
  const webhook: WebhookPolicy = {
    attempts: opts.callbackAttempts ?? DEFAULTS.callbackAttempts,
    retryBaseMs: opts.callbackRetryBaseMs ?? DEFAULTS.callbackRetryBaseMs,
    timeoutMs: opts.callbackTimeoutMs ?? DEFAULTS.callbackTimeoutMs,
  };
  const twilioSettings = {
    accountSid: opts.twilio?.accountSid ?? DEFAULTS.accountSid,
    authToken: opts.twilio?.authToken ?? DEFAULTS.authToken,
    phoneNumber: opts.twilio?.phoneNumber ?? DEFAULTS.phoneNumber,
    inboundUrl: opts.twilio?.inboundUrl ?? DEFAULTS.inboundUrl,
  };
  const sendgridSettings = {
    apiKey: opts.sendgrid?.apiKey ?? DEFAULTS.apiKey,
    webhookUrl: opts.sendgrid?.webhookUrl === undefined ? DEFAULTS.webhookUrl : opts.sendgrid.webhookUrl,
  };
  const signer = createSendGridSigner(opts.sendgrid?.signingKeyPem);
  const webhooks = new WebhookClient(bg);
  const twilioState = createTwilioState(maxRecords);
  const sendgridState = createSendGridState(maxRecords, opts.maxEmailBytes ?? DEFAULTS.maxEmailBytes);

  const { app, twilio } = await buildApp({
    log,
    faults,
    twilio: {
      ctx: { settings: twilioSettings, log: log.child({ component: 'twilio' }), bg, faults, webhook, webhooks, callbackDelayMs },
      state: twilioState,
    },
    sendgrid: {
      ctx: {
        settings: sendgridSettings,
        signer,
        log: log.child({ component: 'sendgrid' }),
        bg,
        faults,
        webhook,
        webhooks,
        callbackDelayMs,
      },
      state: sendgridState,
    },
  });
  try {
    await app.listen({ port: opts.port ?? DEFAULTS.port, host: opts.host ?? DEFAULTS.host });
  } catch (err) {
    // e.g. EADDRINUSE: release what was built so a caller that retries leaks nothing
    await bg.stop();
    await app.close();
    throw err;
  }
  const address = app.server.address() as AddressInfo;
  const host =
    address.address === '0.0.0.0' || address.address === '::'
      ? '127.0.0.1'
      : address.address.includes(':')
        ? `[${address.address}]`
        : address.address;

  let stopping: Promise<void> | undefined;
  return {
    url: `http://${host}:${address.port}`,
    twilio: { accountSid: twilioSettings.accountSid, authToken: twilioSettings.authToken, phoneNumber: twilioSettings.phoneNumber },
    sendgrid: { apiKey: sendgridSettings.apiKey, publicKeyPem: signer.publicKeyPem, publicKeyBase64: signer.publicKeyBase64 },
    records: {
      messages: () => twilioState.messages.list(),
      emails: () => sendgridState.emails.list(),
      inbound: () => twilioState.inbound.list(),
      clear: () => {
        twilioState.messages.clear();
        twilioState.inbound.clear();
        sendgridState.emails.clear();
      },
    },
    faults: {
      add: (spec) => faults.add(parseFaultSpec(spec)),
      list: (provider) => faults.list(provider),
      reset: (provider) => faults.reset(provider),
    },
    playInbound: (p) => twilio.playInbound(p),
    stop() {
      // Idempotent: tests call it in teardown, main.ts on a signal.
      stopping ??= (async () => {
        // Abort pending callbacks and held (hang) answers first, so close() has nothing to
        // wait for; then close the server and its keep-alive sockets.
        const settled = bg.stop();
        await app.close();
        await settled;
      })();
      return stopping;
    },
  };
}

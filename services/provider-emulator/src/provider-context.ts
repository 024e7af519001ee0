import type { Logger } from '@hatch/log';
import type { Background } from './background.js';
import type { FaultStore } from './faults.js';
import type { WebhookClient, WebhookPolicy } from './webhook-client.js';

/** What each provider's routes (twilio.ts, sendgrid.ts) get from the emulator, besides their own settings. */
export interface ProviderContext {
  log: Logger;
  bg: Background;
  faults: FaultStore;
  webhook: WebhookPolicy;
  webhooks: WebhookClient;
  /** delay between status steps or event batches (and before the first callback) */
  callbackDelayMs: number;
}

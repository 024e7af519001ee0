/** The composition root: opens the pool, the bus and Twilio's client; close() shuts them in reverse order. */
import type { Logger } from '@hatch/log';
import { openPoolAndBus, type PoolAndBus } from '@hatch/service';
import type { SmsSenderConfig } from './config.js';
import { createTwilioPort, type TwilioPort } from './twilio-client.js';

export interface SmsSenderResources extends PoolAndBus {
  twilio: TwilioPort;
}

export async function compose(config: SmsSenderConfig, log: Logger): Promise<SmsSenderResources> {
  const core = await openPoolAndBus('sms-sender', config, log);
  // the SDK client holds no connection of its own until it sends: nothing to close
  return {
    ...core,
    twilio: createTwilioPort({
      accountSid: config.TWILIO_ACCOUNT_SID,
      authToken: config.TWILIO_AUTH_TOKEN,
      apiUrl: config.TWILIO_API_URL,
      timeoutMs: config.TWILIO_TIMEOUT_MS,
    }),
  };
}

/** The composition root: opens the pool, the bus and SendGrid's client; close() shuts them in reverse order. */
import type { Logger } from '@hatch/log';
import { openPoolAndBus, type PoolAndBus } from '@hatch/service';
import type { EmailSenderConfig } from './config.js';
import { createSendGridPort, type SendGridPort } from './sendgrid-client.js';

export interface EmailSenderResources extends PoolAndBus {
  sendgrid: SendGridPort;
}

export async function compose(config: EmailSenderConfig, log: Logger): Promise<EmailSenderResources> {
  const core = await openPoolAndBus('email-sender', config, log);
  // the SDK client holds no connection of its own until it sends: nothing to close
  return {
    ...core,
    sendgrid: createSendGridPort({
      apiKey: config.SENDGRID_API_KEY,
      apiUrl: config.SENDGRID_API_URL,
      timeoutMs: config.SENDGRID_TIMEOUT_MS,
    }),
  };
}

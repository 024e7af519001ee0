/** The composition root: opens the pool, the bus and SendGrid's client; close() shuts them in reverse order. */
import { createDb, type Db } from '@hatch/db';
import type { Logger } from '@hatch/log';
import { connectBus, createMetricsRegistry, type Bus } from '@hatch/runtime';
import type { Registry } from 'prom-client';
import type { EmailSenderConfig } from './config.js';
import { createSendGridPort, type SendGridPort } from './sendgrid-client.js';

export interface EmailSenderResources {
  db: Db;
  bus: Bus;
  registry: Registry;
  sendgrid: SendGridPort;
  close(): Promise<void>;
}

export async function compose(config: EmailSenderConfig, log: Logger): Promise<EmailSenderResources> {
  const db = createDb(config.DATABASE_URL, { max: config.DATABASE_POOL_MAX, applicationName: 'hatch-email-sender' });
  let bus: Bus;
  try {
    bus = await connectBus({ url: config.NATS_URL, name: 'hatch-email-sender', log });
  } catch (err) {
    await db.close(1);
    throw err;
  }
  return {
    db,
    bus,
    registry: createMetricsRegistry('email-sender'),
    sendgrid: createSendGridPort({ apiKey: config.SENDGRID_API_KEY, apiUrl: config.SENDGRID_API_URL, timeoutMs: config.SENDGRID_TIMEOUT_MS }),
    async close() {
      await bus.close(3000);
      await db.close(3);
    },
  };
}

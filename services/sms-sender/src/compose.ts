/** The composition root: opens the pool, the bus and Twilio's client; close() shuts them in reverse order. */
import { createDb, type Db } from '@hatch/db';
import type { Logger } from '@hatch/log';
import { connectBus, createMetricsRegistry, type Bus } from '@hatch/runtime';
import type { Registry } from 'prom-client';
import type { SmsSenderConfig } from './config.js';
import { createTwilioPort, type TwilioPort } from './twilio-client.js';

export interface SmsSenderResources {
  db: Db;
  bus: Bus;
  registry: Registry;
  twilio: TwilioPort;
  close(): Promise<void>;
}

export async function compose(config: SmsSenderConfig, log: Logger): Promise<SmsSenderResources> {
  const db = createDb(config.DATABASE_URL, { max: config.DATABASE_POOL_MAX, applicationName: 'hatch-sms-sender' });
  let bus: Bus;
  try {
    bus = await connectBus({ url: config.NATS_URL, name: 'hatch-sms-sender', log });
  } catch (err) {
    await db.close(1);
    throw err;
  }
  return {
    db,
    bus,
    registry: createMetricsRegistry('sms-sender'),
    twilio: createTwilioPort({ accountSid: config.TWILIO_ACCOUNT_SID, authToken: config.TWILIO_AUTH_TOKEN, apiUrl: config.TWILIO_API_URL, timeoutMs: config.TWILIO_TIMEOUT_MS }),
    async close() {
      await bus.close(3000);
      await db.close(3);
    },
  };
}

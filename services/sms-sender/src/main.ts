/** sms-sender: consumes SMS jobs and sends them through Twilio's SDK. */
import { runWorkerProcess } from '@hatch/service';
import { loadSmsSenderConfig } from './config.js';
import { createTwilioPort } from './twilio-client.js';
import { startSmsWorker } from './worker.js';

const config = loadSmsSenderConfig();
await runWorkerProcess({
  service: 'sms-sender',
  config,
  start: (deps) =>
    startSmsWorker(
      { ...deps, twilio: createTwilioPort({ accountSid: config.TWILIO_ACCOUNT_SID, authToken: config.TWILIO_AUTH_TOKEN, apiUrl: config.TWILIO_API_URL, timeoutMs: config.TWILIO_TIMEOUT_MS }) },
      {
        natsPrefix: config.HATCH_NATS_PREFIX,
        publicUrl: config.PUBLIC_URL,
        concurrency: config.SMS_CONCURRENCY,
        ackWaitMs: config.SMS_ACK_WAIT_MS,
        maxDeliver: config.SMS_MAX_DELIVER,
        backoffBaseMs: config.SMS_BACKOFF_BASE_MS,
        backoffMaxMs: config.SMS_BACKOFF_MAX_MS,
      },
    ),
});

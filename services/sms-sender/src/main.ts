/** sms-sender: config → compose → the SMS job consumer (sends through Twilio's SDK) → health; SIGTERM → drain. */
import { runWorkerProcess } from '@hatch/service';
import { loadSmsSenderConfig } from './config.js';
import { compose } from './compose.js';
import { startSmsWorker } from './worker.js';

const config = loadSmsSenderConfig();
await runWorkerProcess({
  service: 'sms-sender',
  config,
  compose: (log) => compose(config, log),
  start: (deps) =>
    startSmsWorker(deps, {
      natsPrefix: config.HATCH_NATS_PREFIX,
      publicUrl: config.PUBLIC_URL,
      concurrency: config.SMS_CONCURRENCY,
      ackWaitMs: config.SMS_ACK_WAIT_MS,
      maxDeliver: config.SMS_MAX_DELIVER,
      backoffBaseMs: config.SMS_BACKOFF_BASE_MS,
      backoffMaxMs: config.SMS_BACKOFF_MAX_MS,
    }),
});

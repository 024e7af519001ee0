/** email-sender: consumes email jobs and sends them through SendGrid's SDK. */
import { runWorkerProcess } from '@hatch/service';
import { loadEmailSenderConfig } from './config.js';
import { createSendGridPort } from './sendgrid-client.js';
import { startEmailWorker } from './worker.js';

const config = loadEmailSenderConfig();
await runWorkerProcess({
  service: 'email-sender',
  config,
  start: (deps) =>
    startEmailWorker(
      { ...deps, sendgrid: createSendGridPort({ apiKey: config.SENDGRID_API_KEY, apiUrl: config.SENDGRID_API_URL, timeoutMs: config.SENDGRID_TIMEOUT_MS }) },
      {
        natsPrefix: config.HATCH_NATS_PREFIX,
        fromEmail: config.SENDGRID_FROM_EMAIL,
        concurrency: config.EMAIL_CONCURRENCY,
        ackWaitMs: config.EMAIL_ACK_WAIT_MS,
        maxDeliver: config.EMAIL_MAX_DELIVER,
        backoffBaseMs: config.EMAIL_BACKOFF_BASE_MS,
        backoffMaxMs: config.EMAIL_BACKOFF_MAX_MS,
        sendTimeoutMs: config.SENDGRID_TIMEOUT_MS,
        unknownOutcomeWaitMs: config.EMAIL_UNKNOWN_OUTCOME_WAIT_MS,
        authPauseMs: config.EMAIL_AUTH_PAUSE_MS,
        attachmentRetentionMs: config.EMAIL_ATTACHMENT_RETENTION_MS,
      },
    ),
});

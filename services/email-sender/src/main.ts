/** email-sender: config → compose → the email job consumer (sends through SendGrid's SDK) → health; SIGTERM → drain. */
import { runWorkerProcess } from '@hatch/service';
import { loadEmailSenderConfig } from './config.js';
import { compose } from './compose.js';
import { startEmailWorker } from './worker.js';

const config = loadEmailSenderConfig();
await runWorkerProcess({
  service: 'email-sender',
  config,
  compose: (log) => compose(config, log),
  start: (deps) =>
    startEmailWorker(deps, {
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
    }),
});

export {
  startJobConsumer,
  ensureConsumer,
  backoffFor,
  type JobOutcome,
  type JobContext,
  type JobConsumer,
  type JobConsumerOptions,
} from './job-consumer.js';
export { MAX_PROVIDER_RETRY_AFTER_MS, capRetryHintMs, parseRetryAfterMs, parseRateLimitResetMs } from './retry-hint.js';

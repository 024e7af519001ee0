export { connectBus, withTimeout, type Bus, type ConnectBusOptions } from './bus.js';
export { onShutdown, type ShutdownOptions } from './shutdown.js';
export { createMetricsRegistry } from './metrics.js';
export { startHealthServer, runReadiness, type HealthServer, type HealthServerOptions, type ReadinessCheck, type ReadinessReport } from './health.js';
export { runWorkerProcess, type WorkerProcessDeps, type WorkerProcessOptions, type WorkerProcessSettings, type RunningWorker } from './worker-process.js';
export { ensureStreams, streamConfigs, isApiError, isNotFound, type StreamLimits } from './streams.js';
export { startJobConsumer, ensureConsumer, backoffFor, type JobOutcome, type JobContext, type JobConsumer, type JobConsumerOptions } from './job-consumer.js';
export { MAX_PROVIDER_RETRY_AFTER_MS, capRetryHintMs, parseRetryAfterMs, parseRateLimitResetMs } from './retry-hint.js';

export { onShutdown, type ShutdownOptions } from './shutdown.js';
export { createMetricsRegistry } from './metrics.js';
export {
  startHealthServer,
  runReadiness,
  type HealthServer,
  type HealthServerOptions,
  type ReadinessCheck,
  type ReadinessReport,
} from './health.js';
export {
  runWorkerProcess,
  type WorkerProcessDeps,
  type WorkerProcessOptions,
  type WorkerProcessSettings,
  type RunningWorker,
} from './worker-process.js';
export { openPoolAndBus, type PoolAndBus, type PoolAndBusSettings } from './resources.js';
export { groupedWrites, GROUPED_WRITES_MAX_QUEUED, type GroupedWritesOptions } from './grouped-writes.js';

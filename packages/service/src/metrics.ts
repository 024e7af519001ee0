import { collectDefaultMetrics, Registry } from 'prom-client';

/** A registry per process with Node's default metrics, every name prefixed `hatch_`. */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry, prefix: 'hatch_' });
  return registry;
}

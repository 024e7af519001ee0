/** The bridge's metrics: one registry per process, every module counts into the same set. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type BridgeMetrics = ReturnType<typeof createBridgeMetrics>;

export function createBridgeMetrics(registry: Registry) {
  return {
    active: new Gauge({ name: 'hatch_bridge_active', help: '1 while this replica holds the lock and relays', registers: [registry] }),
    position: new Gauge({ name: 'hatch_bridge_position', help: 'last relayed journal id', registers: [registry] }),
    relayed: new Counter({
      name: 'hatch_bridge_events_relayed_total',
      help: 'journal rows published to NATS',
      labelNames: ['table'],
      registers: [registry],
    }),
    lag: new Histogram({
      name: 'hatch_bridge_relay_lag_seconds',
      help: 'change time to NATS publish ack',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    catchups: new Counter({
      name: 'hatch_bridge_catchups_total',
      help: 'relay passes that published rows, by what woke them',
      labelNames: ['reason'],
      registers: [registry],
    }),
    gapWaits: new Counter({
      name: 'hatch_bridge_gap_waits_total',
      help: 'gaps in journal ids waited on (uncommitted lower ids)',
      registers: [registry],
    }),
    gapSkipped: new Counter({
      name: 'hatch_bridge_gap_ids_skipped_total',
      help: 'journal ids proven never to commit (rolled back)',
      registers: [registry],
    }),
    publishErrors: new Counter({
      name: 'hatch_bridge_publish_errors_total',
      help: 'failed relay passes (NATS or PostgreSQL)',
      registers: [registry],
    }),
    takeovers: new Counter({ name: 'hatch_bridge_takeovers_total', help: 'times this replica became active', registers: [registry] }),
    deleted: new Counter({ name: 'hatch_bridge_journal_deleted_total', help: 'journal rows deleted by retention', registers: [registry] }),
  };
}

import Type, { type Static } from 'typebox';
import { envWithDatabaseUrl, loadConfig, loadConfigOrExit, workerSettings } from '@hatch/config';

export const BridgeConfig = Type.Object({
  ...workerSettings(9103),
  /** journal rows older than this (and already relayed) are deleted: the resume window */
  HATCH_EVENT_RETENTION_HOURS: Type.Integer({ minimum: 1, maximum: 24 * 30, default: 24 }),
  /** safety-net poll of the journal when no NOTIFY arrives (NOTIFY is only a wake-up) */
  HATCH_BRIDGE_POLL_INTERVAL_MS: Type.Integer({ minimum: 50, maximum: 60_000, default: 1000 }),
  /** journal rows read and published per batch */
  HATCH_BRIDGE_BATCH_SIZE: Type.Integer({ minimum: 1, maximum: 10_000, default: 500 }),
  /** how often a standby tries to take the advisory lock (and the active one re-checks it) */
  HATCH_BRIDGE_LOCK_RETRY_MS: Type.Integer({ minimum: 50, maximum: 60_000, default: 1000 }),
  /** heartbeat event through bridge → NATS → gateways */
  HATCH_BRIDGE_HEARTBEAT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 5000 }),
  /**
   * the relay is unhealthy (/readyz 503) once its last successful journal read is older than
   * this; an active bridge whose passes keep failing that long releases the lock for a standby
   */
  HATCH_BRIDGE_RELAY_STALL_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 30_000 }),
});
export type BridgeConfig = Static<typeof BridgeConfig>;

type Env = Record<string, string | undefined>;
export const parseBridgeConfig = (env: Env) => loadConfig(BridgeConfig, envWithDatabaseUrl(env));
export const loadBridgeConfig = (env: Env = process.env) => loadConfigOrExit('realtime-bridge', BridgeConfig, envWithDatabaseUrl(env));

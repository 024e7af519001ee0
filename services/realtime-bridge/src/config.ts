import Type, { type Static } from 'typebox';
import { envWithDatabaseUrl, loadConfig, loadConfigOrExit, workerSettings } from '@hatch/config';

export const BridgeConfig = Type.Object({
  ...workerSettings(9103),
  HATCH_EVENT_RETENTION_HOURS: Type.Integer({ minimum: 1, maximum: 24 * 30, default: 24 }),
});
export type BridgeConfig = Static<typeof BridgeConfig>;

type Env = Record<string, string | undefined>;
export const parseBridgeConfig = (env: Env) => loadConfig(BridgeConfig, envWithDatabaseUrl(env));
export const loadBridgeConfig = (env: Env = process.env) => loadConfigOrExit('realtime-bridge', BridgeConfig, envWithDatabaseUrl(env));

import Type, { type Static } from 'typebox';
import { envWithDatabaseUrl, loadConfigOrExit, loadConfig, LogLevel } from '@hatch/config';
import { realtimeSettings } from './realtime/config.js';

export const GatewayConfig = Type.Object({
  PORT: Type.Integer({ minimum: 1, maximum: 65535, default: 5002 }),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  DATABASE_URL: Type.String({ pattern: '^postgres(ql)?://' }),
  DATABASE_POOL_MAX: Type.Integer({ minimum: 1, maximum: 200, default: 20 }),
  NATS_URL: Type.String({ pattern: '^(nats|tls|ws|wss)://', default: 'nats://127.0.0.1:4222' }),
  PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s/]+' })),
  HATCH_API_TOKEN: Type.String({ minLength: 16 }),
  HATCH_NATS_PREFIX: Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_]{0,30}$', default: 'HATCH' }),
  HATCH_SENDER_NAME: Type.String({ minLength: 1, maxLength: 100, default: 'me' }),
  HATCH_RATE_LIMIT_PER_MINUTE: Type.Integer({ minimum: 1, default: 1200 }),
  TWILIO_ACCOUNT_SID: Type.Optional(Type.String({ pattern: '^AC[0-9a-fA-F]{32}$' })),
  TWILIO_AUTH_TOKEN: Type.Optional(Type.String({ minLength: 1 })),
  TWILIO_PHONE_NUMBER: Type.Optional(Type.String({ pattern: '^\\+[1-9][0-9]{7,14}$' })),
  SENDGRID_WEBHOOK_PUBLIC_KEY: Type.Optional(Type.String({ minLength: 1 })),
  SENDGRID_FROM_EMAIL: Type.Optional(Type.String({ pattern: '^[^\\s@]+@[^\\s@]+$' })),
  LOG_LEVEL: LogLevel,
  /** the built web UI to serve at / (default: web/dist of this checkout; the image sets /app/web) */
  HATCH_WEB_DIR: Type.Optional(Type.String({ minLength: 1 })),
  ...realtimeSettings,
});
export type GatewayConfig = Static<typeof GatewayConfig> & { PUBLIC_URL: string };

type Env = Record<string, string | undefined>;

function finish(c: Static<typeof GatewayConfig>): GatewayConfig {
  return Object.freeze({ ...c, PUBLIC_URL: (c.PUBLIC_URL ?? `http://localhost:${c.PORT}`).replace(/\/+$/, '') });
}

/** For tests: throws ConfigError listing every problem. */
export function parseGatewayConfig(env: Env): GatewayConfig {
  return finish(loadConfig(GatewayConfig, envWithDatabaseUrl(env)));
}

/** For main.ts: one line per problem on stderr, exit 1. */
export function loadGatewayConfig(env: Env = process.env): GatewayConfig {
  return finish(loadConfigOrExit('gateway', GatewayConfig, envWithDatabaseUrl(env)));
}

import Type, { type Static } from 'typebox';
import { envWithDatabaseUrl, loadConfig, loadConfigOrExit, workerSettings } from '@hatch/config';
import { E164_PATTERN } from '@hatch/contracts';

export const SmsSenderConfig = Type.Object({
  ...workerSettings(9101),
  TWILIO_ACCOUNT_SID: Type.String({ pattern: '^AC[0-9a-fA-F]{32}$' }),
  TWILIO_AUTH_TOKEN: Type.String({ minLength: 1 }),
  TWILIO_PHONE_NUMBER: Type.String({ pattern: E164_PATTERN }),
  TWILIO_API_URL: Type.String({ pattern: '^https?://', default: 'https://api.twilio.com' }),
  PUBLIC_URL: Type.String({ pattern: '^https?://', default: 'http://localhost:5002' }),
  SMS_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 500, default: 16 }),
  SMS_ACK_WAIT_MS: Type.Integer({ minimum: 1000, default: 30_000 }),
  SMS_MAX_DELIVER: Type.Integer({ minimum: 1, maximum: 100, default: 8 }),
  SMS_BACKOFF_BASE_MS: Type.Integer({ minimum: 10, default: 2000 }),
  SMS_BACKOFF_MAX_MS: Type.Integer({ minimum: 100, default: 300_000 }),
  TWILIO_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 8_000 }),
});
export type SmsSenderConfig = Static<typeof SmsSenderConfig>;

type Env = Record<string, string | undefined>;
export const parseSmsSenderConfig = (env: Env) => loadConfig(SmsSenderConfig, envWithDatabaseUrl(env));
export const loadSmsSenderConfig = (env: Env = process.env) => loadConfigOrExit('sms-sender', SmsSenderConfig, envWithDatabaseUrl(env));

/**
 * The emulator's settings, read from the environment by main.ts only. Every default makes
 * `pnpm start` work with nothing set: the other services point TWILIO_API_URL and
 * SENDGRID_API_URL here and use these same development credentials.
 */
import Type, { type Static } from 'typebox';
import { ConfigError, configOrExit, LogLevel, loadConfig } from '@hatch/config';
import { E164_PATTERN } from '@hatch/contracts';
import { DEFAULTS, type EmulatorOptions } from './emulator.js';
import { FaultError, parseFaultSpec, type FaultSpec } from './faults.js';

const Url = (def: string) => Type.String({ pattern: '^https?://', default: def });

export const EmulatorConfig = Type.Object({
  EMULATOR_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: DEFAULTS.port }),
  /**
   * Loopback by default: the emulator accepts the development credentials and sends signed
   * callbacks for anyone who reaches it, so it is never exposed. A container sets 0.0.0.0
   * explicitly (compose's dev profile, the k8s dev overlay) so its neighbours can reach it.
   */
  EMULATOR_HOST: Type.String({ minLength: 1, default: DEFAULTS.host }),
  EMULATOR_TWILIO_ACCOUNT_SID: Type.String({ pattern: '^AC[0-9a-fA-F]{32}$', default: DEFAULTS.accountSid }),
  EMULATOR_TWILIO_AUTH_TOKEN: Type.String({ minLength: 8, default: DEFAULTS.authToken }),
  EMULATOR_TWILIO_PHONE_NUMBER: Type.String({ pattern: E164_PATTERN, default: DEFAULTS.phoneNumber }),
  EMULATOR_TWILIO_INBOUND_URL: Url(DEFAULTS.inboundUrl),
  EMULATOR_SENDGRID_API_KEY: Type.String({ minLength: 8, default: DEFAULTS.apiKey }),
  /** PEM of an EC P-256 private key (or EMULATOR_SENDGRID_SIGNING_KEY_FILE); generated when unset */
  EMULATOR_SENDGRID_SIGNING_KEY: Type.Optional(Type.String({ minLength: 1 })),
  EMULATOR_SENDGRID_WEBHOOK_URL: Url(DEFAULTS.webhookUrl),
  EMULATOR_CALLBACK_DELAY_MS: Type.Integer({ minimum: 0, maximum: 600_000, default: DEFAULTS.callbackDelayMs }),
  EMULATOR_CALLBACK_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 20, default: DEFAULTS.callbackAttempts }),
  EMULATOR_MAX_RECORDS: Type.Integer({ minimum: 1, maximum: 10_000_000, default: DEFAULTS.maxRecords }),
  EMULATOR_MAX_EMAIL_BYTES: Type.Integer({ minimum: 1024, default: DEFAULTS.maxEmailBytes }),
  /** JSON: one fault object or an array of them, active from the start */
  EMULATOR_FAULTS: Type.Optional(Type.String({ minLength: 1 })),
  LOG_LEVEL: LogLevel,
});
export type EmulatorConfig = Static<typeof EmulatorConfig>;

type Env = Record<string, string | undefined>;

/** EMULATOR_FAULTS → fault specs; a ConfigError names every problem. */
export function parseFaultsEnv(raw: string | undefined): FaultSpec[] {
  if (raw === undefined) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError(['EMULATOR_FAULTS: must be JSON (a fault object or an array of them)']);
  }
  const list: unknown[] = Array.isArray(parsed) ? parsed : [parsed];
  const problems: string[] = [];
  const specs: FaultSpec[] = [];
  list.forEach((f, i) => {
    try {
      specs.push(parseFaultSpec(f));
    } catch (err) {
      if (!(err instanceof FaultError)) throw err;
      for (const p of err.problems) problems.push(`EMULATOR_FAULTS[${i}]: ${p}`);
    }
  });
  if (problems.length) throw new ConfigError(problems);
  return specs;
}

/** Library options from the service config (logger added by main.ts). */
export function emulatorOptions(config: EmulatorConfig): EmulatorOptions {
  return {
    port: config.EMULATOR_PORT,
    host: config.EMULATOR_HOST,
    twilio: {
      accountSid: config.EMULATOR_TWILIO_ACCOUNT_SID,
      authToken: config.EMULATOR_TWILIO_AUTH_TOKEN,
      phoneNumber: config.EMULATOR_TWILIO_PHONE_NUMBER,
      inboundUrl: config.EMULATOR_TWILIO_INBOUND_URL,
    },
    sendgrid: {
      apiKey: config.EMULATOR_SENDGRID_API_KEY,
      signingKeyPem: config.EMULATOR_SENDGRID_SIGNING_KEY,
      webhookUrl: config.EMULATOR_SENDGRID_WEBHOOK_URL,
    },
    callbackDelayMs: config.EMULATOR_CALLBACK_DELAY_MS,
    callbackAttempts: config.EMULATOR_CALLBACK_ATTEMPTS,
    maxRecords: config.EMULATOR_MAX_RECORDS,
    maxEmailBytes: config.EMULATOR_MAX_EMAIL_BYTES,
    faults: parseFaultsEnv(config.EMULATOR_FAULTS),
  };
}

/** For tests: the config, or a ConfigError listing every problem. */
export function parseEmulatorConfig(env: Env): Readonly<EmulatorConfig> {
  const config = loadConfig(EmulatorConfig, env);
  parseFaultsEnv(config.EMULATOR_FAULTS);
  return config;
}

/** For main.ts: the config, or one line per problem on stderr and exit 1. */
export function loadEmulatorConfig(env: Env = process.env): Readonly<EmulatorConfig> {
  return configOrExit('provider-emulator', () => parseEmulatorConfig(env));
}

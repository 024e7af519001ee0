import Type, { type Static } from 'typebox';
import { envWithDatabaseUrl, loadConfig, loadConfigOrExit, workerSettings } from '@hatch/config';
import { EmailAddressSchema } from '@hatch/contracts';

export const EmailSenderConfig = Type.Object({
  ...workerSettings(9102),
  SENDGRID_API_KEY: Type.String({ minLength: 1 }),
  SENDGRID_FROM_EMAIL: EmailAddressSchema,
  SENDGRID_API_URL: Type.String({ pattern: '^https?://', default: 'https://api.sendgrid.com' }),
  SENDGRID_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 120_000, default: 20_000 }),
  EMAIL_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 200, default: 8 }),
  EMAIL_ACK_WAIT_MS: Type.Integer({ minimum: 1000, default: 30_000 }),
  EMAIL_MAX_DELIVER: Type.Integer({ minimum: 1, maximum: 100, default: 8 }),
  EMAIL_BACKOFF_BASE_MS: Type.Integer({ minimum: 10, default: 2000 }),
  EMAIL_BACKOFF_MAX_MS: Type.Integer({ minimum: 100, default: 300_000 }),
  /** after a 5xx / timeout, how long to wait for SendGrid's events before resending (handle-email-job.ts) */
  EMAIL_UNKNOWN_OUTCOME_WAIT_MS: Type.Integer({ minimum: 0, default: 300_000 }),
  /** after a SendGrid 401/403, every send waits this long */
  EMAIL_AUTH_PAUSE_MS: Type.Integer({ minimum: 0, default: 60_000 }),
  /** attachment content of emails never sent is deleted after this */
  EMAIL_ATTACHMENT_RETENTION_MS: Type.Integer({ minimum: 60_000, default: 7 * 24 * 3600 * 1000 }),
});
export type EmailSenderConfig = Static<typeof EmailSenderConfig>;

type Env = Record<string, string | undefined>;
export const parseEmailSenderConfig = (env: Env) => loadConfig(EmailSenderConfig, envWithDatabaseUrl(env));
export const loadEmailSenderConfig = (env: Env = process.env) =>
  loadConfigOrExit('email-sender', EmailSenderConfig, envWithDatabaseUrl(env));

import Type, { type Static } from 'typebox';
import { envWithDatabaseUrl, loadConfig, loadConfigOrExit, workerSettings } from '@hatch/config';

export const EmailSenderConfig = Type.Object({
  ...workerSettings(9102),
  SENDGRID_API_KEY: Type.String({ minLength: 1 }),
  SENDGRID_FROM_EMAIL: Type.String({ pattern: '^[^\\s@]+@[^\\s@]+$' }),
  SENDGRID_API_URL: Type.String({ pattern: '^https?://', default: 'https://api.sendgrid.com' }),
});
export type EmailSenderConfig = Static<typeof EmailSenderConfig>;

type Env = Record<string, string | undefined>;
export const parseEmailSenderConfig = (env: Env) => loadConfig(EmailSenderConfig, envWithDatabaseUrl(env));
export const loadEmailSenderConfig = (env: Env = process.env) => loadConfigOrExit('email-sender', EmailSenderConfig, envWithDatabaseUrl(env));

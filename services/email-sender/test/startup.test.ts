import t from 'tap';
import { ConfigError } from '@hatch/config';
import { spawnService } from '@hatch/testing';
import { parseEmailSenderConfig } from '../src/config.js';

const base = { DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/x', SENDGRID_API_KEY: 'SG.key', SENDGRID_FROM_EMAIL: 'hatch@example.com' };

t.test('email-sender settings: defaults, and every problem named at once', async (t) => {
  const c = parseEmailSenderConfig(base);
  t.match(c, { SENDGRID_API_URL: 'https://api.sendgrid.com', HEALTH_PORT: 9102, EMAIL_CONCURRENCY: 8, EMAIL_MAX_DELIVER: 8, EMAIL_UNKNOWN_OUTCOME_WAIT_MS: 300_000 });
  let err: unknown;
  try {
    parseEmailSenderConfig({ DATABASE_URL: base.DATABASE_URL, SENDGRID_FROM_EMAIL: 'not an address', EMAIL_CONCURRENCY: '0' });
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof ConfigError, 'a ConfigError');
  for (const name of ['SENDGRID_API_KEY', 'SENDGRID_FROM_EMAIL', 'EMAIL_CONCURRENCY']) t.match((err as Error).message, name, `names ${name}`);
});

t.test('without SENDGRID_API_KEY the process stops at start with one line naming it', async (t) => {
  const p = spawnService(t, 'email-sender', { DATABASE_URL: base.DATABASE_URL, SENDGRID_FROM_EMAIL: base.SENDGRID_FROM_EMAIL });
  t.equal(await p.exited, 1);
  t.match(p.output(), /SENDGRID_API_KEY/);
});

import t from 'tap';
import { randomUUID } from 'node:crypto';
import { ConfigError } from '@hatch/config';
import { deleteEmailAttachments, insertEmail, insertEmailAttachments, purgeEmailAttachments } from '@hatch/db';
import { createTestDb } from '@hatch/testing';
import { parseEmailSenderConfig } from '../src/config.js';

const base = { DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/x', SENDGRID_API_KEY: 'SG.key', SENDGRID_FROM_EMAIL: 'hatch@example.com' };

// (The process shell, /healthz and the one-line-per-problem exit are tested for every worker in
// services/sms-sender/test/startup.test.ts.)
t.test('email-sender settings: defaults, and every problem named at once', async (t) => {
  const c = parseEmailSenderConfig(base);
  t.match(c, {
    SENDGRID_API_URL: 'https://api.sendgrid.com',
    HEALTH_PORT: 9102,
    EMAIL_CONCURRENCY: 8,
    EMAIL_MAX_DELIVER: 8,
    EMAIL_UNKNOWN_OUTCOME_WAIT_MS: 300_000,
  });
  let err: unknown;
  try {
    parseEmailSenderConfig({ DATABASE_URL: base.DATABASE_URL, SENDGRID_FROM_EMAIL: 'not an address', EMAIL_CONCURRENCY: '0' });
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof ConfigError, 'a ConfigError');
  for (const name of ['SENDGRID_API_KEY', 'SENDGRID_FROM_EMAIL', 'EMAIL_CONCURRENCY'])
    t.match((err as Error).message, name, `names ${name}`);
});

t.test('attachment content: deleted when sent, or by the retention sweep in bounded batches', async (t) => {
  const db = await createTestDb(t);
  const mk = async (ageMs: number) => {
    const id = randomUUID();
    await insertEmail(db.db, { id, to_email: ['a@example.com'], from_email: '', subject: 's', body: 'b' });
    await insertEmailAttachments(
      db.db,
      [0, 1, 2].map((position) => ({
        email_id: id,
        position,
        filename: `f${position}`,
        content_type: 'text/plain',
        content: Buffer.from('x'),
        created_at: new Date(Date.now() - ageMs),
      })),
    );
    return id;
  };
  const sent = await mk(0);
  const old = await mk(8 * 24 * 3600 * 1000);
  const fresh = await mk(60_000);
  t.equal(await deleteEmailAttachments(db.db, sent), 3);
  const cutoff = new Date(Date.now() - 7 * 24 * 3600 * 1000);
  t.equal(await purgeEmailAttachments(db.db, cutoff, 2), 2, 'one bounded batch');
  t.equal(await purgeEmailAttachments(db.db, cutoff, 2), 1);
  t.equal(await purgeEmailAttachments(db.db, cutoff, 2), 0);
  const left = await db.db.selectFrom('email_attachments').select('email_id').execute();
  t.same(new Set(left.map((r) => r.email_id)), new Set([fresh]), 'only the fresh email keeps its content');
  t.ok(old);
});

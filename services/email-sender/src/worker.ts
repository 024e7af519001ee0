/**
 * startEmailWorker: the email job consumer (shared machinery in @hatch/jobs) around
 * handleEmailJob, plus the retention sweep of attachment content never sent.
 */
import { EmailJob, natsNames } from '@hatch/contracts';
import {
  applyEmailStatuses,
  claimSends,
  deleteEmailAttachments,
  emailStatusChange,
  markSendExhausted,
  purgeEmailAttachments,
  type Db,
  type StatusChange,
} from '@hatch/db';
import { groupedWrites } from '@hatch/service';
import type { Logger } from '@hatch/log';
import { ensureStreams, type Bus } from '@hatch/bus';
import { backoffFor, startJobConsumer } from '@hatch/jobs';
import { Counter, type Registry } from 'prom-client';
import { handleEmailJob, type EmailJobDeps } from './handle-email-job.js';
import type { SendGridPort } from './sendgrid-client.js';

export interface EmailWorkerOptions {
  natsPrefix: string;
  fromEmail: string;
  concurrency: number;
  ackWaitMs: number;
  maxDeliver: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** the SDK's request timeout: a live claim outlasts one call */
  sendTimeoutMs: number;
  unknownOutcomeWaitMs: number;
  authPauseMs: number;
  attachmentRetentionMs: number;
  /** how often the attachment retention sweep runs */
  purgeIntervalMs?: number;
}

export async function startEmailWorker(
  deps: { db: Db; bus: Bus; log: Logger; registry: Registry; sendgrid: SendGridPort },
  opts: EmailWorkerOptions,
): Promise<{ stop(): Promise<void> }> {
  const names = natsNames(opts.natsPrefix);
  await ensureStreams(deps.bus.jsm, names, {}, deps.bus.replicas);
  const authFailures = new Counter({
    name: 'hatch_sendgrid_auth_failures_total',
    help: 'SendGrid 401/403 answers (credentials or account problem; sending pauses)',
    labelNames: ['code'],
    registers: [deps.registry],
  });
  // Concurrent jobs' claims and `sent` writes: one statement (one transaction) per group.
  const claim = groupedWrites(deps, {
    name: 'email_claims',
    write: (ids: string[]) => claimSends(deps.db.db, 'emails', ids, { from_email: opts.fromEmail }),
  });
  const recordSent = groupedWrites(deps, {
    name: 'email_sent',
    write: (changes: StatusChange[]) =>
      deps.db.db.transaction().execute(async (tx) => {
        const results = await applyEmailStatuses(tx, changes);
        await deleteEmailAttachments(
          tx,
          changes.map((c) => c.id),
        );
        return results;
      }),
  });
  const handlerDeps: EmailJobDeps = {
    db: deps.db,
    claim,
    recordSent: async (id, change) => {
      await recordSent(emailStatusChange(id, change));
    },
    sendgrid: deps.sendgrid,
    fromEmail: opts.fromEmail,
    staleClaimMs: Math.max(opts.ackWaitMs, opts.sendTimeoutMs + 5000),
    unknownOutcomeWaitMs: opts.unknownOutcomeWaitMs,
    authPauseMs: opts.authPauseMs,
    pause: { until: 0 },
    backoff: backoffFor(opts.backoffBaseMs, opts.backoffMaxMs),
    onAuthFailure: (code) => authFailures.inc({ code }),
  };
  const consumer = await startJobConsumer({
    bus: deps.bus,
    log: deps.log,
    registry: deps.registry,
    kind: 'email',
    stream: names.streams.jobs,
    durable: names.consumers.emailSender,
    subject: names.subjects.emailJob,
    dlqSubject: names.subjects.dlqFor('email'),
    schema: EmailJob,
    concurrency: opts.concurrency,
    ackWaitMs: opts.ackWaitMs,
    maxDeliver: opts.maxDeliver,
    handle: (job, ctx) => handleEmailJob(job, ctx, handlerDeps),
    onExhausted: (job, reason) => markSendExhausted(deps.db.db, 'emails', job.email_id, reason),
  });
  // Attachment content of emails that never got sent goes after its retention, in bounded batches.
  const purge = setInterval(
    () => {
      purgeEmailAttachments(deps.db.db, new Date(Date.now() - opts.attachmentRetentionMs)).catch((err: unknown) =>
        deps.log.warn({ err: { message: (err as Error).message } }, 'attachment retention sweep failed'),
      );
    },
    opts.purgeIntervalMs ?? 10 * 60_000,
  );
  purge.unref();
  return {
    async stop() {
      clearInterval(purge);
      await consumer.stop();
    },
  };
}

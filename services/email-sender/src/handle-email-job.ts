/**
 * handleEmailJob: what to do with one email job, decided against PostgreSQL (the source of
 * truth), never against the bus; the email twin of handleSmsJob on the same machinery (send
 * claims in @hatch/db send-claims.ts, the job loop in @hatch/jobs).
 *
 * - An email is CLAIMED (queued → sending, conditional update) before SendGrid is called: a
 *   redelivered or duplicated job finds nothing to claim and never calls SendGrid again.
 * - UNKNOWN OUTCOME POLICY (5xx, timeout, connection reset after the request left us).
 *   SendGrid's mail send has no idempotency key and no API to ask "did you take this?"
 *   (docs/reliability.md#sendgrid), so the worker cannot reconcile by lookup as the SMS side does.
 *   What it can do: every accepted send produces a `processed` (or `dropped`/`deferred`) event
 *   within seconds, carrying our email id in custom_args, and the event webhook moves the email
 *   out of `sending`. So after an unknown outcome the email stays `sending` with no live claim,
 *   and the job waits EMAIL_UNKNOWN_OUTCOME_WAIT_MS (default 5 min) for that evidence:
 *     - an event arrived (status moved on) → the email was taken: ack, never resend;
 *     - no event within the wait → SendGrid almost surely did not take it: resend (logged at
 *       warn as a resend after an unknown outcome).
 *   The duplicate window left: SendGrid accepted the request AND its events could not reach us
 *   for the whole wait (webhook down or not configured). We accept that over losing the email:
 *   a rare duplicate email is more tolerable than a silently unsent one
 *   (docs/reliability.md#the-remaining-windows); with the webhook down the wait can be raised.
 * - 429 → the claim is given back (SendGrid did not take it) and the job retries after
 *   X-RateLimit-Reset. 400/413 and other 4xx → failed at once with SendGrid's errors in
 *   provider_response. 401/403 → failed, an error log and a metric, and every send pauses for
 *   EMAIL_AUTH_PAUSE_MS (a key or account problem would otherwise burn the whole queue).
 * - Attachment content is deleted in the same transaction that records `sent`.
 */
import {
  findEmail,
  findEmailAttachments,
  markSendFailed,
  markSendOutcomeUnknown,
  claimStaleSend,
  markSendReleased,
  type Db,
  type EmailRow,
  type EmailStatusChange,
  type SendClaim,
} from '@hatch/db';
import type { EmailJob } from '@hatch/contracts';
import type { JobContext, JobOutcome } from '@hatch/jobs';
import { classifySendGridError, type SendGridPort } from './sendgrid-client.js';
import { renderEmail } from './template.js';

/** Shared by every handler of one worker: set when SendGrid refuses our credentials. */
export interface SendPause {
  until: number;
}

export interface EmailJobDeps {
  db: Db;
  /**
   * The job's email looked up and, when queued, claimed with the sender address (claimSends):
   * grouped with the concurrent jobs' claims into one statement by the worker (worker.ts).
   */
  claim(emailId: string): Promise<SendClaim<'emails'>>;
  /** `sent` and the attachment content deleted, in one transaction, grouped with the concurrent jobs' likewise */
  recordSent(emailId: string, change: EmailStatusChange): Promise<void>;
  sendgrid: SendGridPort;
  fromEmail: string;
  /** a `sending` claim older than this belongs to a dead worker */
  staleClaimMs: number;
  /** how long an unknown outcome waits for SendGrid's events before a resend */
  unknownOutcomeWaitMs: number;
  /** after a 401/403, every send waits this long */
  authPauseMs: number;
  pause: SendPause;
  backoff(deliveryCount: number): number;
  onAuthFailure?(code: string): void;
}

const TABLE = 'emails';

export async function handleEmailJob(job: EmailJob, ctx: JobContext, deps: EmailJobDeps): Promise<JobOutcome> {
  // The look-up and the claim are one statement (a queued email comes back claimed), except
  // while sending is paused: then it is only looked up.
  const paused = deps.pause.until > Date.now();
  const { row: e, claimed } = paused ? { row: await findEmail(deps.db.db, job.email_id), claimed: false } : await deps.claim(job.email_id);
  if (!e) return { kind: 'ack', note: 'no such email' };
  if (claimed) return send(e, ctx, deps);
  const now = Date.now();

  if (e.status === 'queued') {
    if (paused)
      return {
        kind: 'retry',
        delayMs: Math.max(0, deps.pause.until - now),
        reason: 'sending paused after a SendGrid authentication failure',
      };
    return { kind: 'retry', delayMs: deps.staleClaimMs, reason: 'claimed by another worker' };
  }

  if (e.status === 'sending') {
    if (e.claimed_at !== null) {
      if (now - e.claimed_at.getTime() < deps.staleClaimMs)
        return { kind: 'retry', delayMs: deps.staleClaimMs, reason: 'another worker is sending it' };
      // Its worker died during the call: the outcome is unknown from now on.
      await markSendOutcomeUnknown(deps.db.db, TABLE, e.id);
      ctx.log.warn({ emailId: e.id }, 'email left sending by a dead worker; waiting for SendGrid events before any resend');
      return { kind: 'retry', delayMs: deps.unknownOutcomeWaitMs, reason: 'outcome unknown (worker died)' };
    }
    const waited = now - e.updated_at.getTime();
    if (waited < deps.unknownOutcomeWaitMs) {
      return { kind: 'retry', delayMs: deps.unknownOutcomeWaitMs - waited, reason: 'outcome unknown; waiting for SendGrid events' };
    }
    const taken = await claimStaleSend(deps.db.db, TABLE, e.id, new Date(now - deps.staleClaimMs));
    if (!taken) return { kind: 'retry', delayMs: deps.backoff(ctx.deliveryCount), reason: 'reclaimed by another worker' };
    ctx.log.warn({ emailId: e.id, attempt: taken.attempts, waitedMs: waited }, 'no SendGrid event after an unknown outcome; resending');
    return send(taken, ctx, deps);
  }
  // sent, deferred, delivered, bounced, dropped, failed: a duplicate or late job.
  return { kind: 'ack', note: `already ${e.status}` };
}

async function send(e: EmailRow, ctx: JobContext, deps: EmailJobDeps): Promise<JobOutcome> {
  const attachments = await findEmailAttachments(deps.db.db, e.id);
  const { text, html } = renderEmail({ subject: e.subject, body: e.body, htmlContent: e.html_content });
  let sent;
  let answeredAt: number | undefined;
  try {
    ctx.working();
    sent = await deps.sendgrid.send({
      emailId: e.id,
      from: deps.fromEmail,
      to: e.to_email,
      cc: e.cc,
      bcc: e.bcc,
      replyTo: e.reply_to,
      subject: e.subject,
      text,
      html,
      attachments: attachments.map((a) => ({
        filename: a.filename,
        type: a.content_type,
        content: Buffer.from(a.content).toString('base64'),
      })),
    });
    answeredAt = performance.now(); // when it was sent, for the timeline (an event webhook can beat our write)
  } catch (err) {
    const f = classifySendGridError(err);
    switch (f.kind) {
      case 'rate_limited':
      case 'not_sent': {
        const delayMs = f.kind === 'rate_limited' && f.retryAfterMs !== undefined ? f.retryAfterMs : deps.backoff(ctx.deliveryCount);
        const detail = `${f.kind === 'rate_limited' ? 'rate limited' : 'not sent'}; retrying in ${Math.ceil(delayMs / 1000)} s`;
        await markSendReleased(deps.db.db, TABLE, e.id, { providerCode: f.code, detail });
        return { kind: 'retry', delayMs, reason: `${f.kind} (${f.code})` };
      }
      case 'unknown': {
        ctx.log.warn({ emailId: e.id, code: f.code }, 'SendGrid outcome unknown; waiting for its events before any resend');
        await markSendOutcomeUnknown(deps.db.db, TABLE, e.id, {
          providerCode: f.code,
          detail: `outcome unknown (${f.message}); waiting for SendGrid events before any resend`,
        });
        return {
          kind: 'retry',
          delayMs: Math.max(deps.unknownOutcomeWaitMs, deps.backoff(ctx.deliveryCount)),
          reason: `outcome unknown (${f.code})`,
        };
      }
      case 'auth':
      case 'permanent': {
        await markSendFailed(deps.db.db, TABLE, e.id, {
          code: f.code,
          detail: f.message,
          message: f.message,
          providerResponse: f.response,
        });
        if (f.kind === 'auth') {
          deps.pause.until = Date.now() + deps.authPauseMs;
          deps.onAuthFailure?.(f.code);
          ctx.log.error(
            { emailId: e.id, code: f.code, pauseMs: deps.authPauseMs },
            'SendGrid refused our credentials or account (401/403): check SENDGRID_API_KEY and the sender identity; sending paused',
          );
        } else {
          ctx.log.info({ emailId: e.id, code: f.code }, 'email refused by SendGrid (permanent)');
        }
        return { kind: 'fail', code: f.code, reason: f.message };
      }
    }
  }
  const response = { status: sent.statusCode, message_id: sent.messageId };
  await deps.recordSent(e.id, {
    status: 'sent',
    source: 'worker',
    detail: sent.messageId,
    happenedAt: answeredAt,
    onMove: { claimed_at: null },
    always: { provider_message_id: sent.messageId, provider_response: response as never },
  });
  ctx.log.info({ emailId: e.id, messageId: sent.messageId }, 'email sent');
  return { kind: 'ack' };
}

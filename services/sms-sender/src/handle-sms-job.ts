/**
 * handleSmsJob: what to do with one SMS job, decided against PostgreSQL (the source of truth),
 * never against the bus. Twilio's POST is not idempotent (docs/reliability.md#twilio), so:
 * - a message is CLAIMED (queued → sending, conditional update) before Twilio is called: a
 *   redelivered or duplicated job finds nothing to claim and never calls Twilio again;
 * - a message found `sending` is either being sent by a live worker right now (leave it: retry
 *   later) or was left by a crash or an unknown outcome: it is RECONCILED — looked up at Twilio
 *   (a status callback may already have recorded its SID; else the provider's recent messages to
 *   that number are searched for this body since the claim) — and only resent when Twilio has no
 *   trace of it. The window left: Twilio accepted the message but the lookup does not see it yet
 *   (its list is eventually consistent); that is logged as a resend after reconciliation.
 */
import {
  claimStaleSend,
  findMessageByProviderSid,
  insertOptOut,
  markSendFailed,
  markSendOutcomeUnknown,
  markSendReleased,
  type Db,
  type MessageRow,
  type MessageStatusChange,
  type MessageStatusResult,
  type SendClaim,
} from '@hatch/db';
import type { SmsJob } from '@hatch/contracts';
import type { JobContext, JobOutcome } from '@hatch/jobs';
import { classifyTwilioError, type ProviderMessage, type TwilioPort } from './twilio-client.js';

export interface SmsJobDeps {
  db: Db;
  /**
   * The job's message looked up and, when queued, claimed (claimSends): grouped with the
   * concurrent jobs' claims into one statement by the worker (worker.ts).
   */
  claim(messageId: string): Promise<SendClaim<'messages'>>;
  /** a status change (applyMessageStatuses), grouped with the concurrent jobs' writes likewise */
  applyStatus(messageId: string, change: MessageStatusChange): Promise<MessageStatusResult>;
  twilio: TwilioPort;
  /** PUBLIC_URL/webhooks/twilio/status?mid=<id>: our id rides along so callbacks find the row */
  statusCallbackUrl(messageId: string): string;
  /** a `sending` claim older than this belongs to a dead worker */
  staleClaimMs: number;
  /** retry delay when nothing better is known: base * 2^(attempt-1), capped */
  backoff(deliveryCount: number): number;
}

/** Twilio's code for a recipient who replied STOP. */
export const TWILIO_UNSUBSCRIBED = '21610';

export async function handleSmsJob(job: SmsJob, ctx: JobContext, deps: SmsJobDeps): Promise<JobOutcome> {
  // The look-up and the claim are one statement: a queued outbound SMS comes back claimed.
  const { row: m, claimed } = await deps.claim(job.message_id);
  if (!m) return { kind: 'ack', note: 'no such message' };
  if (m.channel !== 'sms' || m.direction !== 'outbound') return { kind: 'ack', note: 'not an outbound SMS' };
  if (claimed) return send(m, ctx, deps);

  if (m.status === 'queued') return { kind: 'retry', delayMs: deps.staleClaimMs, reason: 'claimed by another worker' };
  if (m.status === 'sending') {
    const liveClaim = m.claimed_at !== null && Date.now() - m.claimed_at.getTime() < deps.staleClaimMs;
    if (liveClaim) return { kind: 'retry', delayMs: deps.staleClaimMs, reason: 'another worker is sending it' };
    const taken = await claimStaleSend(deps.db.db, 'messages', m.id, new Date(Date.now() - deps.staleClaimMs));
    if (!taken) return { kind: 'retry', delayMs: deps.backoff(ctx.deliveryCount), reason: 'reclaimed by another worker' };
    return reconcile(taken, ctx, deps);
  }
  // sent, delivered, undelivered, failed: a duplicate or late job; nothing to do.
  return { kind: 'ack', note: `already ${m.status}` };
}

async function reconcile(m: MessageRow, ctx: JobContext, deps: SmsJobDeps): Promise<JobOutcome> {
  if (m.provider_sid) {
    // A status callback already told us Twilio has it.
    await recordSent(deps, m, m.provider_sid, null, 'reconciled: provider SID known from a callback');
    return { kind: 'ack', note: 'reconciled from callback' };
  }
  let found: ProviderMessage | undefined;
  try {
    const since = new Date(m.created_at.getTime() - 60_000);
    const recent = await deps.twilio.findRecent({ to: m.to_contact, from: m.from_contact, since });
    for (const p of recent) {
      if (p.body !== m.body) continue;
      const owner = await findMessageByProviderSid(deps.db.db, p.sid);
      if (!owner || owner.id === m.id) {
        found = p;
        break;
      }
    }
  } catch (err) {
    const f = classifyTwilioError(err);
    await markSendOutcomeUnknown(deps.db.db, 'messages', m.id);
    ctx.log.warn({ messageId: m.id, code: f.code }, 'reconciliation lookup failed; will try again');
    return {
      kind: 'retry',
      delayMs: f.kind === 'rate_limited' && f.retryAfterMs ? f.retryAfterMs : deps.backoff(ctx.deliveryCount),
      reason: `lookup failed: ${f.code}`,
    };
  }
  if (found) {
    ctx.log.info({ messageId: m.id, sid: found.sid }, 'reconciled: Twilio already had the message; not resending');
    await recordSent(deps, m, found.sid, null, 'reconciled: found at Twilio');
    return { kind: 'ack', note: 'reconciled' };
  }
  ctx.log.warn({ messageId: m.id, attempt: m.attempts }, 'reconciled: Twilio has no trace of the message; sending it');
  return send(m, ctx, deps);
}

async function recordSent(
  deps: SmsJobDeps,
  m: MessageRow,
  sid: string,
  segments: number | null,
  detail: string | null,
  happenedAt?: number,
): Promise<void> {
  await deps.applyStatus(m.id, {
    status: 'sent',
    source: 'worker',
    detail: detail ?? sid,
    happenedAt,
    onMove: { claimed_at: null },
    always: { provider_sid: sid, segments },
  });
}

async function send(m: MessageRow, ctx: JobContext, deps: SmsJobDeps): Promise<JobOutcome> {
  let sent;
  let answeredAt: number | undefined;
  try {
    ctx.working();
    sent = await deps.twilio.create({ to: m.to_contact, from: m.from_contact, body: m.body, statusCallback: deps.statusCallbackUrl(m.id) });
    answeredAt = performance.now(); // when it was sent, for the timeline (a callback can beat our write)
  } catch (err) {
    const f = classifyTwilioError(err);
    switch (f.kind) {
      case 'rate_limited': {
        const delayMs = Math.max(f.retryAfterMs ?? 0, deps.backoff(ctx.deliveryCount));
        const detail = `rate limited; retrying in ${Math.ceil(delayMs / 1000)} s`;
        await markSendReleased(deps.db.db, 'messages', m.id, { providerCode: f.code, detail });
        return { kind: 'retry', delayMs, reason: `rate limited (${f.code})` };
      }
      case 'not_sent': {
        ctx.log.error({ messageId: m.id, code: f.code }, `Twilio refused the request before sending: ${f.message}`);
        await markSendReleased(deps.db.db, 'messages', m.id, { providerCode: f.code, detail: f.message });
        return { kind: 'retry', delayMs: f.delayMs, reason: `not sent (${f.code})` };
      }
      case 'unknown': {
        ctx.log.warn({ messageId: m.id, code: f.code }, 'Twilio outcome unknown; the next attempt reconciles before any resend');
        await markSendOutcomeUnknown(deps.db.db, 'messages', m.id, { providerCode: f.code, detail: 'outcome unknown; reconciling' });
        return { kind: 'retry', delayMs: deps.backoff(ctx.deliveryCount), reason: `outcome unknown (${f.code})` };
      }
      case 'permanent': {
        await deps.db.db.transaction().execute(async (tx) => {
          await markSendFailed(tx, 'messages', m.id, { code: f.code, detail: f.message, message: f.message });
          if (f.code === TWILIO_UNSUBSCRIBED) await insertOptOut(tx, { phone: m.to_contact, reason: f.code, source: 'provider' });
        });
        ctx.log.info({ messageId: m.id, code: f.code }, 'SMS refused by Twilio (permanent)');
        return { kind: 'fail', code: f.code, reason: f.message };
      }
    }
  }
  await recordSent(deps, m, sent.sid, sent.numSegments, null, answeredAt);
  ctx.log.info({ messageId: m.id, sid: sent.sid }, 'sms sent');
  return { kind: 'ack' };
}

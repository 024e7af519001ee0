/** startSmsWorker: the SMS job consumer (shared machinery in @hatch/jobs) around handleSmsJob. */
import { natsNames, SmsJob } from '@hatch/contracts';
import { applyMessageStatuses, claimSends, markSendExhausted, messageStatusChange, type Db, type StatusChange } from '@hatch/db';
import type { Logger } from '@hatch/log';
import { ensureStreams, type Bus } from '@hatch/bus';
import { backoffFor, startJobConsumer } from '@hatch/jobs';
import { groupedWrites } from '@hatch/service';
import type { Registry } from 'prom-client';
import { handleSmsJob, type SmsJobDeps } from './handle-sms-job.js';
import type { TwilioPort } from './twilio-client.js';

export interface SmsWorkerOptions {
  natsPrefix: string;
  publicUrl: string;
  concurrency: number;
  ackWaitMs: number;
  maxDeliver: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

export async function startSmsWorker(
  deps: { db: Db; bus: Bus; log: Logger; registry: Registry; twilio: TwilioPort },
  opts: SmsWorkerOptions,
): Promise<{ stop(): Promise<void> }> {
  const names = natsNames(opts.natsPrefix);
  await ensureStreams(deps.bus.jsm, names, {}, deps.bus.replicas);
  const callbackBase = `${opts.publicUrl.replace(/\/+$/, '')}/webhooks/twilio/status`;
  // Concurrent jobs' claims and status writes: one statement per group (bench P2).
  const claim = groupedWrites(deps, { name: 'message_claims', write: (ids: string[]) => claimSends(deps.db.db, 'messages', ids) });
  const applyStatus = groupedWrites(deps, {
    name: 'message_status',
    write: (changes: StatusChange[]) => applyMessageStatuses(deps.db.db, changes),
  });
  const handlerDeps: SmsJobDeps = {
    db: deps.db,
    claim,
    applyStatus: (id, change) => applyStatus(messageStatusChange(id, change)),
    twilio: deps.twilio,
    statusCallbackUrl: (id: string) => `${callbackBase}?mid=${id}`,
    // A live claim outlasts one provider call (AckWait, kept alive by working()).
    staleClaimMs: opts.ackWaitMs,
    backoff: backoffFor(opts.backoffBaseMs, opts.backoffMaxMs),
  };
  return startJobConsumer({
    bus: deps.bus,
    log: deps.log,
    registry: deps.registry,
    kind: 'sms',
    stream: names.streams.jobs,
    durable: names.consumers.smsSender,
    subject: names.subjects.smsJob,
    dlqSubject: names.subjects.dlqFor('sms'),
    schema: SmsJob,
    concurrency: opts.concurrency,
    ackWaitMs: opts.ackWaitMs,
    maxDeliver: opts.maxDeliver,
    handle: (job, ctx) => handleSmsJob(job, ctx, handlerDeps),
    onExhausted: (job, reason) => markSendExhausted(deps.db.db, 'messages', job.message_id, reason),
  });
}

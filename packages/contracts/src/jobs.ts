/**
 * Job payloads on `<p>.jobs.*`. A job only names the row: PostgreSQL is the source of truth
 * (docs/architecture.md, rule 1), so a worker always reads the current row and claims it before acting.
 * `Nats-Msg-Id` is the row id, so a re-published outbox row is dropped by JetStream's dedupe.
 */
import Type, { type Static } from 'typebox';
import { UUID_PATTERN } from './identity.js';

const Uuid = Type.String({ pattern: UUID_PATTERN });

export const SmsJob = Type.Object(
  { v: Type.Literal(1), message_id: Uuid, enqueued_at: Type.String({ format: 'date-time' }) },
  { additionalProperties: true },
);
export type SmsJob = Static<typeof SmsJob>;

export const EmailJob = Type.Object(
  { v: Type.Literal(1), email_id: Uuid, enqueued_at: Type.String({ format: 'date-time' }) },
  { additionalProperties: true },
);
export type EmailJob = Static<typeof EmailJob>;

/** Headers carried on job messages and kept on their dead letters. */
export const JOB_HEADERS = {
  msgId: 'Nats-Msg-Id',
  /** why a job was dead-lettered: MAX_DELIVERIES, POISON, … */
  deadReason: 'Hatch-Dead-Reason',
  deadDetail: 'Hatch-Dead-Detail',
  originalSubject: 'Hatch-Original-Subject',
  /** the job's own Nats-Msg-Id; the dead letter has its own (see the job consumer) */
  originalMsgId: 'Hatch-Original-Msg-Id',
  deliveries: 'Hatch-Deliveries',
} as const;

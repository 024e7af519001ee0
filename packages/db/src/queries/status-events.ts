import type { Insertable, Selectable } from 'kysely';
import type { Executor } from '../client.js';
import type { StatusEvents } from '../generated.js';

export type StatusEventRow = Selectable<StatusEvents>;
export type NewStatusEvent = Insertable<StatusEvents>;

/**
 * Who did something (issue 18; the `sent_by` / `sent_by_source` columns of messages, emails and
 * status_events): a person (`sent_by` their user id, source 'user'), the bootstrap
 * HATCH_API_TOKEN (`sent_by` null, 'api-token'), or no person: 'provider' (a provider's status
 * report), 'webhook' (an inbound message), 'worker', 'outbox' (a stalled job re-queued).
 */
export interface Attribution {
  sent_by: string | null;
  sent_by_source: AttributionSource;
}
export type AttributionSource = 'user' | 'api-token' | 'provider' | 'webhook' | 'worker' | 'outbox';

/** Who a timeline entry of a given `source` comes from, where no person is involved. */
export function sourceAttribution(source: string): AttributionSource | null {
  switch (source) {
    case 'worker':
      return 'worker';
    case 'outbox':
      return 'outbox';
    case 'twilio_callback':
    case 'sendgrid_event':
      return 'provider';
    case 'twilio_inbound':
      return 'webhook';
    default:
      return null;
  }
}

/**
 * Adds a timeline row; without a `sent_by_source` it follows from `source` (sourceAttribution).
 * With a provider_event_id, a replay of the same provider event is stored
 * once: returns false when it was already there.
 */
export async function insertStatusEvent(ex: Executor, e: NewStatusEvent): Promise<boolean> {
  const q = ex.insertInto('status_events').values({ ...e, sent_by_source: e.sent_by_source ?? sourceAttribution(e.source) });
  if (e.provider_event_id == null) {
    await q.execute();
    return true;
  }
  const r = await q
    .onConflict((oc) => oc.column('provider_event_id').where('provider_event_id', 'is not', null).doNothing())
    .executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0n) > 0;
}

export async function findTimeline(ex: Executor, ref: { messageId: string } | { emailId: string }): Promise<StatusEventRow[]> {
  const q = ex.selectFrom('status_events').selectAll();
  const filtered = 'messageId' in ref ? q.where('message_id', '=', ref.messageId) : q.where('email_id', '=', ref.emailId);
  return filtered.orderBy('occurred_at').orderBy('id').execute();
}

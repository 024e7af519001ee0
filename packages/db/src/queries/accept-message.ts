import { sql } from 'kysely';
import type { Executor } from '../client.js';
import type { ConversationRow } from './conversations.js';
import type { NewMessage } from './messages.js';
import type { OutboxRow } from './outbox.js';
import { takeSmsQuotaSql } from './sms-quota.js';
import { sourceAttribution, type Attribution } from './status-events.js';

export interface AcceptMessage {
  message: Pick<NewMessage, 'from_contact' | 'to_contact' | 'body' | 'channel' | 'direction' | 'status' | 'segments' | 'provider_sid'> & {
    id: string;
    conversation_id: string;
  };
  /** `at`: when the message was accepted: its created_at and the conversation's last activity */
  conversation: { participants: [string, string]; channel: ConversationRow['channel']; at: Date };
  /** the first timeline entry's source */
  source: string;
  /** who sent it (the message's and its first timeline entry's sent_by); default: from `source` (an inbound message: 'webhook') */
  attribution?: Attribution;
  /**
   * the `message_sent` audit row's actor (issue 18; ids only, never the body), written by the same
   * statement so a group commit stays one round trip; none for an inbound message
   */
  audit?: { kind: string; actor_id: string | null; actor_label: string | null };
  /** SMS: the job's outbox row (its dedupe id is the message id) */
  outbox: boolean;
  /** the Idempotency-Key row to complete with the answer, in the same commit */
  idempotency?: { scope: string; key: string; status: number; body: unknown };
}

/** What the relay needs of an outbox row to publish its job and delete it. */
export type OutboxJob = Pick<OutboxRow, 'id' | 'kind' | 'entity_id' | 'dedupe_id'>;

/**
 * Per message, in input order: stored (with its job's outbox row, for an SMS), or refused
 * because the recipient opted out (an outbound SMS to a number that texted STOP), or because
 * today's SMS limit is used up.
 */
export type AcceptOutcome = { accepted: true; outbox?: OutboxJob } | { accepted: false; reason: 'opted_out' | 'sms_daily_limit' };

export interface AcceptOptions {
  /** outbound SMS per UTC day, all writers together (HATCH_SMS_DAILY_LIMIT); unset: counted, not limited */
  smsDailyLimit?: number;
}

interface Accepted {
  n: number;
  accepted: boolean;
  opted_out: boolean;
  outbox_id: string | null;
  outbox_kind: OutboxRow['kind'] | null;
  outbox_dedupe_id: string | null;
}

/**
 * Stores messages as ONE statement (docs/architecture.md, rule 1: the answer means all of it committed): for
 * each message the conversation upsert (message count, last message), the message, its first
 * timeline row, the SMS's outbox row, the completed Idempotency-Key answer and the audit row
 * (ids only; issue 18), as data-modifying
 * CTEs over the input rows. The gateway groups concurrent sends into one call (group commit:
 * services/gateway/src/send-batcher.ts), so one commit, one WAL flush and one journal NOTIFY
 * serve many sends; a single message is a batch of one.
 *
 * - Outbound SMS to an opted-out number are refused here, in the same snapshot as the write
 *   (no separate look-up round trip); the others in the batch are stored.
 * - The other outbound SMS take today's SMS limit (sms-quota.ts) in input order; those past it
 *   are refused, and a batch of chat messages alone never touches the counter.
 * - Several messages to one conversation are folded into one upsert (a row can be changed only
 *   once per statement): count added, the last one in input order becomes last_message.
 *   Conversations are upserted in id order, so concurrent batches lock them in the same order.
 * - Foreign keys are checked at the end of the statement, so the CTE order does not matter.
 * - Any error (a duplicate provider_sid, a lost connection) fails the whole statement and
 *   changes nothing; the caller decides whether to retry the messages one by one.
 */
export async function acceptMessages(ex: Executor, items: readonly AcceptMessage[], opts: AcceptOptions = {}): Promise<AcceptOutcome[]> {
  if (items.length === 0) return [];
  // sent as text and cast: a jsonb-typed parameter would be JSON-encoded once more by postgres.js
  const input = JSON.stringify(
    items.map((a, n) => ({
      n,
      id: a.message.id,
      conversation_id: a.message.conversation_id,
      from_contact: a.message.from_contact,
      to_contact: a.message.to_contact,
      body: a.message.body,
      channel: a.message.channel,
      direction: a.message.direction,
      status: a.message.status,
      segments: a.message.segments ?? null,
      provider_sid: a.message.provider_sid ?? null,
      participants: a.conversation.participants,
      conversation_channel: a.conversation.channel,
      at: a.conversation.at.toISOString(),
      source: a.source,
      sent_by: a.attribution?.sent_by ?? null,
      sent_by_source: a.attribution?.sent_by_source ?? sourceAttribution(a.source),
      audit_kind: a.audit?.kind ?? null,
      audit_actor_id: a.audit?.actor_id ?? null,
      audit_actor_label: a.audit?.actor_label ?? null,
      outbox: a.outbox,
      idem_scope: a.idempotency?.scope ?? null,
      idem_key: a.idempotency?.key ?? null,
      idem_status: a.idempotency?.status ?? null,
      idem_body: a.idempotency ? a.idempotency.body : null,
    })),
  );
  const r = await sql<Accepted>`
    WITH input AS (
      SELECT * FROM jsonb_to_recordset(${input}::text::jsonb) AS i(
        n int, id uuid, conversation_id uuid, from_contact text, to_contact text, body text,
        channel message_channel, direction message_direction, status message_status, segments int,
        provider_sid text, participants text[], conversation_channel conversation_channel, at timestamptz,
        source text, sent_by uuid, sent_by_source text, audit_kind text, audit_actor_id uuid, audit_actor_label text, outbox boolean, idem_scope text, idem_key text, idem_status int, idem_body jsonb)
    ),
    reachable AS (
      SELECT i.* FROM input i
      LEFT JOIN opt_outs o ON o.phone = i.to_contact AND i.direction = 'outbound' AND i.channel = 'sms'
      WHERE o.phone IS NULL
    ),
    metered AS (
      SELECT n, row_number() OVER (ORDER BY n) AS slot FROM reachable WHERE direction = 'outbound' AND channel = 'sms'
    ),
    quota AS (${takeSmsQuotaSql(opts.smsDailyLimit ?? null, sql`SELECT count(*)::int FROM metered`)}),
    accepted AS (
      SELECT r.* FROM reachable r
      WHERE NOT EXISTS (SELECT 1 FROM metered m WHERE m.n = r.n AND m.slot > coalesce((SELECT last_taken FROM quota), 0))
    ),
    per_conversation AS (
      SELECT DISTINCT ON (conversation_id) conversation_id, participants, conversation_channel, id AS last_message_id,
        count(*) OVER w AS message_count, min(at) OVER w AS first_at, max(at) OVER w AS last_at
      FROM accepted
      WINDOW w AS (PARTITION BY conversation_id)
      ORDER BY conversation_id, n DESC
    ),
    conv AS (
      INSERT INTO conversations (id, participants, channel, last_message_id, last_message_at, message_count, created_at, updated_at)
      SELECT conversation_id, participants, conversation_channel, last_message_id, last_at, message_count, first_at, last_at
      FROM per_conversation ORDER BY conversation_id
      ON CONFLICT (id) DO UPDATE SET
        -- the latest message wins, whichever commits last (two groups can be in flight at once)
        last_message_id = CASE WHEN excluded.last_message_at >= conversations.last_message_at
          THEN excluded.last_message_id ELSE conversations.last_message_id END,
        last_message_at = greatest(conversations.last_message_at, excluded.last_message_at),
        message_count = conversations.message_count + excluded.message_count,
        updated_at = excluded.updated_at
      RETURNING 1
    ),
    msg AS (
      INSERT INTO messages (id, conversation_id, from_contact, to_contact, body, channel, direction, status, segments, provider_sid, sent_by, sent_by_source, created_at, updated_at)
      SELECT id, conversation_id, from_contact, to_contact, body, channel, direction, status, segments, provider_sid, sent_by, sent_by_source, at, at
      FROM accepted ORDER BY n
      RETURNING 1
    ),
    timeline AS (
      INSERT INTO status_events (message_id, status, source, sent_by, sent_by_source)
      SELECT id, status::text, source, sent_by, sent_by_source FROM accepted ORDER BY n
      RETURNING 1
    ),
    audit AS (
      INSERT INTO audit_events (kind, actor_id, actor_label, subject)
      SELECT audit_kind, audit_actor_id, audit_actor_label, jsonb_build_object('message_id', id, 'conversation_id', conversation_id)
      FROM accepted WHERE audit_kind IS NOT NULL ORDER BY n
      RETURNING 1
    ),
    idem AS (
      UPDATE idempotency_keys k SET state = 'completed', response_status = a.idem_status, response_body = a.idem_body, locked_until = NULL
      FROM accepted a
      WHERE a.idem_key IS NOT NULL AND k.scope = a.idem_scope AND k.key = a.idem_key
      RETURNING 1
    ),
    job AS (
      INSERT INTO outbox (kind, entity_id, dedupe_id)
      SELECT 'sms', id, id::text FROM accepted WHERE outbox ORDER BY n
      RETURNING id, kind, entity_id, dedupe_id
    )
    SELECT i.n, a.n IS NOT NULL AS accepted, r.n IS NULL AS opted_out, j.id AS outbox_id, j.kind AS outbox_kind, j.dedupe_id AS outbox_dedupe_id
    FROM input i
    LEFT JOIN accepted a ON a.n = i.n
    LEFT JOIN reachable r ON r.n = i.n
    LEFT JOIN job j ON j.entity_id = i.id
    ORDER BY i.n`.execute(ex);
  // (data-modifying CTEs always run to completion, read or not)
  return r.rows.map((row, n) => {
    if (!row.accepted) return { accepted: false, reason: row.opted_out ? 'opted_out' : 'sms_daily_limit' };
    const item = items[n] as AcceptMessage;
    if (row.outbox_id === null || row.outbox_kind === null || row.outbox_dedupe_id === null) return { accepted: true };
    return {
      accepted: true,
      outbox: { id: String(row.outbox_id), kind: row.outbox_kind, entity_id: item.message.id, dedupe_id: row.outbox_dedupe_id },
    };
  });
}

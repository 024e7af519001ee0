import { sql } from 'kysely';
import type { Executor } from '../client.js';
import type { ConversationRow } from './conversations.js';
import type { NewMessage } from './messages.js';
import type { OutboxRow } from './outbox.js';

export interface AcceptMessage {
  message: Pick<NewMessage, 'id' | 'conversation_id' | 'from_contact' | 'to_contact' | 'body' | 'channel' | 'direction' | 'status' | 'segments'> & { id: string; conversation_id: string };
  conversation: { participants: [string, string]; channel: ConversationRow['channel']; at: Date };
  /** the first timeline entry's source */
  source: string;
  /** SMS: the job's outbox row (its dedupe id is the message id) */
  outbox: boolean;
  /** the Idempotency-Key row to complete with the answer, in the same commit */
  idempotency?: { scope: string; key: string; status: number; body: unknown };
}

/**
 * Accepting a message is ONE statement (design rule 1: the 202 means all of it committed):
 * the conversation upsert (message count, last message), the message, its first timeline row,
 * the SMS's outbox row and the completed Idempotency-Key answer, as data-modifying CTEs. One round
 * trip instead of seven (BEGIN, five statements, COMMIT): the conversation row and the commit's
 * NOTIFY lock are held for a single statement, which is what bounded the send rate (bench P1).
 * Foreign keys between the parts are checked at the end of the statement, so the order of the
 * CTEs does not matter. Returns the outbox row for the relay, if any.
 */
export async function acceptMessage(ex: Executor, a: AcceptMessage): Promise<OutboxRow | undefined> {
  const m = a.message;
  const c = a.conversation;
  const idem = a.idempotency;
  const r = await sql<OutboxRow>`
    WITH conv AS (
      INSERT INTO conversations (id, participants, channel, last_message_id, last_message_at, message_count, created_at, updated_at)
      VALUES (${m.conversation_id}, ${sql.val(c.participants)}::text[], ${c.channel}, ${m.id}, ${c.at}, 1, ${c.at}, ${c.at})
      ON CONFLICT (id) DO UPDATE SET
        last_message_id = excluded.last_message_id,
        last_message_at = greatest(conversations.last_message_at, excluded.last_message_at),
        message_count = conversations.message_count + 1,
        updated_at = excluded.updated_at
      RETURNING 1
    ),
    msg AS (
      INSERT INTO messages (id, conversation_id, from_contact, to_contact, body, channel, direction, status, segments)
      VALUES (${m.id}, ${m.conversation_id}, ${m.from_contact}, ${m.to_contact}, ${m.body}, ${m.channel}, ${m.direction}, ${m.status}, ${m.segments ?? null}::int)
      RETURNING 1
    ),
    timeline AS (
      INSERT INTO status_events (message_id, status, source) VALUES (${m.id}, ${m.status}, ${a.source})
      RETURNING 1
    ),
    idem AS (
      UPDATE idempotency_keys SET state = 'completed', response_status = ${idem?.status ?? null}::int,
        response_body = ${idem ? JSON.stringify(idem.body) : null}::jsonb, locked_until = NULL
      WHERE ${idem !== undefined} AND scope = ${idem?.scope ?? ''} AND key = ${idem?.key ?? ''}
      RETURNING 1
    ),
    job AS (
      INSERT INTO outbox (kind, entity_id, dedupe_id)
      SELECT 'sms', ${m.id}::uuid, ${m.id} WHERE ${a.outbox}
      RETURNING *
    )
    SELECT * FROM job`.execute(ex);
  // (data-modifying CTEs always run to completion, read or not)
  return r.rows[0];
}

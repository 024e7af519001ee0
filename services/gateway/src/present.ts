/** Rows → contract shapes (contracts/http.ts). `names`: who sent them (attribution.ts senderNames). */
import type { Message, TimelineEntry } from '@hatch/contracts';
import type { MessageRow, StatusEventRow } from '@hatch/db';
import { sentByOf, type SenderNames } from './attribution.js';

export function toApiMessage(m: MessageRow, names: SenderNames): Message {
  return {
    id: m.id,
    conversation_id: m.conversation_id,
    from_contact: m.from_contact,
    to_contact: m.to_contact,
    body: m.body,
    channel: m.channel,
    direction: m.direction,
    status: m.status,
    error_code: m.error_code,
    error_message: m.error_message,
    provider_sid: m.provider_sid,
    segments: m.segments,
    sent_by: sentByOf(m, names),
    created_at: m.created_at.toISOString(),
    updated_at: m.updated_at.toISOString(),
  };
}

export function toTimelineEntry(e: StatusEventRow, names: SenderNames): TimelineEntry {
  return {
    at: e.occurred_at.toISOString(),
    status: e.status,
    provider_code: e.provider_code,
    source: e.source,
    detail: e.detail,
    sent_by: sentByOf(e, names),
  };
}

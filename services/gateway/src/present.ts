/** Rows → contract shapes (contracts/http.ts). */
import type { Message, TimelineEntry } from '@hatch/contracts';
import type { MessageRow, StatusEventRow } from '@hatch/db';

export function toApiMessage(m: MessageRow): Message {
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
    created_at: m.created_at.toISOString(),
    updated_at: m.updated_at.toISOString(),
  };
}

export function toTimelineEntry(e: StatusEventRow): TimelineEntry {
  return { at: e.occurred_at.toISOString(), status: e.status, provider_code: e.provider_code, source: e.source, detail: e.detail };
}

/**
 * The Message resource: what the emulator keeps of each create request and inbound SMS (its
 * bounded state) and the resource's JSON as Twilio answers it.
 */
import type { SmsEncoding } from '@hatch/contracts';
import { BoundedLog } from './bounded-log.js';
import type { AppliedFault } from './faults.js';
import type { FormParams } from './signing.js';
import type { WebhookResult } from './webhook-client.js';
import type { DeliveryRecord } from './webhook-queue.js';

export const API_VERSION = '2010-04-01';

export type CallbackRecord = { status: string } & DeliveryRecord;

/** One create request as the emulator saw and answered it. */
export interface MessageRecord {
  seq: number;
  receivedAt: string;
  /** a Message resource exists: Twilio would deliver it and callbacks fire */
  accepted: boolean;
  /** the status the client was answered; null while held (hang) or when dropped */
  httpStatus: number | null;
  fault: AppliedFault | null;
  /** every form parameter as received */
  params: FormParams;
  sid: string | null;
  to: string | null;
  from: string | null;
  messagingServiceSid: string | null;
  body: string | null;
  statusCallback: string | null;
  numSegments: number | null;
  encoding: SmsEncoding | null;
  /** current Twilio status of an accepted message */
  status: string | null;
  /** the refusal's Twilio code, or the delivery ErrorCode */
  errorCode: number | null;
  errorMessage: string | null;
  dateCreated: string;
  dateUpdated: string;
  dateSent: string | null;
  price: string | null;
  callbacks: CallbackRecord[];
}

export interface InboundRecord {
  seq: number;
  at: string;
  messageSid: string;
  url: string;
  params: FormParams;
  deliveries: WebhookResult[];
}

export interface TwilioState {
  messages: BoundedLog<MessageRecord>;
  inbound: BoundedLog<InboundRecord>;
  bySid: Map<string, MessageRecord>;
}

export function createTwilioState(maxRecords: number): TwilioState {
  const bySid = new Map<string, MessageRecord>();
  return {
    bySid,
    messages: new BoundedLog<MessageRecord>(maxRecords, Number.POSITIVE_INFINITY, (m) => {
      if (m.sid) bySid.delete(m.sid);
    }),
    inbound: new BoundedLog<InboundRecord>(maxRecords),
  };
}

/** RFC 2822 in UTC, the format of Twilio's date_* fields ("Tue, 24 Nov 2026 17:49:22 +0000"). */
function rfc2822(iso: string | null): string | null {
  return iso === null ? null : new Date(iso).toUTCString().replace('GMT', '+0000');
}

export function messageUri(accountSid: string, sid: string): string {
  return `/${API_VERSION}/Accounts/${accountSid}/Messages/${sid}.json`;
}

/** The Message resource in Twilio's JSON shape. */
export function messageResource(m: MessageRecord, accountSid: string, opts: { creating?: boolean } = {}): Record<string, unknown> {
  const sid = m.sid ?? '';
  // With a Messaging Service the sender is picked later, so the create answer has no segment
  // count yet (docs/reliability.md#twilio); a later fetch has it.
  const segments = opts.creating && m.messagingServiceSid ? 0 : (m.numSegments ?? 0);
  return {
    account_sid: accountSid,
    api_version: API_VERSION,
    body: m.body,
    date_created: rfc2822(m.dateCreated),
    date_sent: rfc2822(m.dateSent),
    date_updated: rfc2822(m.dateUpdated),
    direction: 'outbound-api',
    error_code: m.status === 'undelivered' || m.status === 'failed' ? m.errorCode : null,
    error_message: m.status === 'undelivered' || m.status === 'failed' ? m.errorMessage : null,
    from: m.from,
    messaging_service_sid: m.messagingServiceSid,
    num_media: '0',
    num_segments: String(segments),
    price: m.price,
    price_unit: 'USD',
    sid,
    status: m.status,
    subresource_uris: {
      media: `/${API_VERSION}/Accounts/${accountSid}/Messages/${sid}/Media.json`,
      feedback: `/${API_VERSION}/Accounts/${accountSid}/Messages/${sid}/Feedback.json`,
    },
    to: m.to,
    uri: messageUri(accountSid, sid),
  };
}

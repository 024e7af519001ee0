/**
 * HTTP bodies of the gateway (docs/api.md): request and response schemas used by
 * the routes (validation + serialisation + OpenAPI) and by the web UI.
 */
import Type, { type Static, type TSchema } from 'typebox';
import { EmailStatusSchema, MessageStatusSchema } from './status.js';
import { UUID_PATTERN } from './identity.js';

export const Uuid = Type.String({ pattern: UUID_PATTERN });
const Timestamp = Type.String({ format: 'date-time' });
const Nullable = <T extends TSchema>(s: T) => Type.Union([s, Type.Null()]);

export const SMS_BODY_MAX = 1600;

// ---- errors -------------------------------------------------------------------------------

/** Stable machine codes of the contract's error body. */
export const ERROR_CODES = {
  INVALID_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  /** the route cannot answer in a type the Accept header admits (GET /api/events without text/event-stream) */
  NOT_ACCEPTABLE: 406,
  /** the request did not arrive within the server's time limits (Node's requestTimeout / headersTimeout) */
  REQUEST_TIMEOUT: 408,
  CONFLICT: 409,
  IDEMPOTENCY_IN_PROGRESS: 409,
  NOT_RETRYABLE: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  IDEMPOTENCY_KEY_REUSED: 422,
  RECIPIENT_OPTED_OUT: 422,
  /** SMS spend guard: the recipient's country is not in HATCH_SMS_ALLOWED_COUNTRIES */
  SMS_COUNTRY_NOT_ALLOWED: 422,
  /** SMS spend guard: HATCH_SMS_DAILY_LIMIT SMS were accepted today (UTC) */
  SMS_DAILY_LIMIT_REACHED: 422,
  RATE_LIMITED: 429,
  /** request headers past Node's limit (16 KiB) */
  HEADERS_TOO_LARGE: 431,
  INTERNAL_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
} as const;
export type ErrorCode = keyof typeof ERROR_CODES;

export const ErrorDetail = Type.Object({ field: Type.String(), message: Type.String() });
export type ErrorDetail = Static<typeof ErrorDetail>;

export const ErrorBody = Type.Object(
  {
    success: Type.Literal(false),
    error: Type.String({ description: 'for people: what went wrong and what to do' }),
    code: Type.String({ description: 'for programs: one of ERROR_CODES' }),
    details: Type.Optional(Type.Array(ErrorDetail, { description: 'the fields at fault' })),
  },
  {
    examples: [
      { success: false, error: 'body.to is required', code: 'INVALID_REQUEST', details: [{ field: 'body.to', message: 'is required' }] },
    ],
  },
);
export type ErrorBody = Static<typeof ErrorBody>;

// ---- pagination ---------------------------------------------------------------------------

export const PageQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
    before: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: false },
);
export type PageQuery = Static<typeof PageQuery>;

export const IdParams = Type.Object({ id: Type.String({ maxLength: 64 }) });
/** One thing of one person: `/api/users/:id/sessions/:item_id`, `/api/users/:id/tokens/:item_id`. */
export const UserItemParams = Type.Object({ id: Type.String({ maxLength: 64 }), item_id: Type.String({ maxLength: 64 }) });

// ---- messages -----------------------------------------------------------------------------

export const Channel = Type.Union([Type.Literal('sms'), Type.Literal('chat'), Type.Literal('email')]);
export const MessageChannel = Type.Union([Type.Literal('sms'), Type.Literal('chat')]);
export const Direction = Type.Union([Type.Literal('outbound'), Type.Literal('inbound')]);

export const SendMessageBody = Type.Object(
  {
    to: Type.String({ minLength: 1, maxLength: 200, description: 'an E.164 number (an SMS) or a contact name (a chat message)' }),
    body: Type.String({ minLength: 1, maxLength: SMS_BODY_MAX }),
    from: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        description: 'default: TWILIO_PHONE_NUMBER for an SMS, HATCH_SENDER_NAME for a chat message',
      }),
    ),
  },
  {
    additionalProperties: false,
    // In the OpenAPI document; a test sends each to a gateway.
    examples: [
      { to: '+14155550100', body: 'Your order has shipped.', from: '+14155550199' },
      { to: 'Alice', body: 'Lunch at noon?' },
    ],
  },
);
export type SendMessageBody = Static<typeof SendMessageBody>;

export const SendMessageResponse = Type.Object(
  {
    success: Type.Literal(true),
    message_id: Uuid,
    conversation_id: Uuid,
    status: MessageStatusSchema,
  },
  {
    examples: [
      {
        success: true,
        message_id: '0193a5b2-7c1e-7d4a-9f3b-2a6c8e1d4f70',
        conversation_id: '5f0c2b9e-3d7a-5e41-8b6f-1c9d2e3a4b5c',
        status: 'queued',
      },
    ],
  },
);
export type SendMessageResponse = Static<typeof SendMessageResponse>;

/**
 * Who sent a message or an email, or made a timeline entry (issue 18): a person (`id` their user
 * id, `name` their name), or the bootstrap HATCH_API_TOKEN (`id` null, `name` "API"). `sent_by`
 * is null where no person did it (a provider's report, an inbound message, a worker, the outbox)
 * and on rows from before accounts.
 */
export const SentBy = Type.Object(
  {
    id: Nullable(Uuid),
    name: Type.String(),
  },
  { description: 'who: a person {id, name}, or the bootstrap API token {id: null, name: "API"}' },
);
export type SentBy = Static<typeof SentBy>;

export const Message = Type.Object({
  id: Uuid,
  conversation_id: Uuid,
  from_contact: Type.String(),
  to_contact: Type.String(),
  body: Type.String(),
  channel: MessageChannel,
  direction: Direction,
  status: MessageStatusSchema,
  error_code: Nullable(Type.String()),
  error_message: Nullable(Type.String()),
  provider_sid: Nullable(Type.String()),
  segments: Nullable(Type.Integer()),
  /** who sent it: null for an inbound message and for messages from before accounts */
  sent_by: Nullable(SentBy),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export type Message = Static<typeof Message>;

export const TimelineEntry = Type.Object({
  at: Timestamp,
  status: Type.String(),
  provider_code: Nullable(Type.String()),
  source: Type.String(),
  detail: Nullable(Type.String()),
  /** who made the entry (a send, a retry): null for a provider, a worker, the outbox, and old entries */
  sent_by: Nullable(SentBy),
});
export type TimelineEntry = Static<typeof TimelineEntry>;

export const MessageWithTimeline = Type.Object({ message: Message, timeline: Type.Array(TimelineEntry) });
export type MessageWithTimeline = Static<typeof MessageWithTimeline>;

export const MessagePage = Type.Object({ messages: Type.Array(Message), next_cursor: Nullable(Type.String()) });
export type MessagePage = Static<typeof MessagePage>;

export const Conversation = Type.Object({
  conversation_id: Uuid,
  participants: Type.Array(Type.String()),
  channel: Channel,
  last_message: Nullable(Message),
  message_count: Type.Integer({ minimum: 0 }),
  updated_at: Timestamp,
});
export type Conversation = Static<typeof Conversation>;

export const ConversationPage = Type.Object({ conversations: Type.Array(Conversation), next_cursor: Nullable(Type.String()) });
export type ConversationPage = Static<typeof ConversationPage>;

export const RetryResponse = Type.Object({ success: Type.Literal(true), message_id: Uuid, status: MessageStatusSchema });
export type RetryResponse = Static<typeof RetryResponse>;

// ---- email --------------------------------------------------------------------------------

export const EMAIL_LIMITS = {
  addressMax: 254,
  localPartMax: 64,
  recipientsMax: 50,
  subjectMax: 998,
  bodyMaxBytes: 100 * 1024,
  attachmentsMax: 10,
  attachmentMaxBytes: 5 * 1024 * 1024,
  attachmentsTotalMaxBytes: 20 * 1024 * 1024,
} as const;

const EmailAddress = Type.String({ minLength: 3, maxLength: EMAIL_LIMITS.addressMax });
const OneOrMany = Type.Union([EmailAddress, Type.Array(EmailAddress, { minItems: 1, maxItems: EMAIL_LIMITS.recipientsMax })]);

export const EmailAttachmentInput = Type.Object(
  {
    filename: Type.String({ minLength: 1, maxLength: 255 }),
    content: Type.String({ minLength: 1 }),
    type: Type.String({ minLength: 3, maxLength: 255 }),
  },
  { additionalProperties: false },
);

export const SendEmailBody = Type.Object(
  {
    to_email: OneOrMany,
    subject: Type.String({ minLength: 1, maxLength: EMAIL_LIMITS.subjectMax }),
    body: Type.String({ minLength: 1 }),
    html_content: Type.Optional(Type.String({ minLength: 1 })),
    cc: Type.Optional(OneOrMany),
    bcc: Type.Optional(OneOrMany),
    reply_to: Type.Optional(EmailAddress),
    attachments: Type.Optional(Type.Array(EmailAttachmentInput, { maxItems: EMAIL_LIMITS.attachmentsMax })),
  },
  {
    additionalProperties: false,
    examples: [
      { to_email: 'alice@example.com', subject: 'Welcome', body: 'Thanks for signing up.' },
      {
        to_email: ['alice@example.com', 'bob@example.com'],
        cc: 'carol@example.com',
        subject: 'Invoice 1042',
        body: 'Your invoice is attached.',
        html_content: '<p>Your invoice is attached.</p>',
        reply_to: 'billing@example.com',
        attachments: [{ filename: 'invoice-1042.txt', content: 'SW52b2ljZSAxMDQyOiAxMi4wMCBFVVI=', type: 'text/plain' }],
      },
    ],
  },
);
export type SendEmailBody = Static<typeof SendEmailBody>;

export const SendEmailResponse = Type.Object(
  {
    success: Type.Literal(true),
    email_id: Uuid,
    status: EmailStatusSchema,
    message: Type.String(),
  },
  {
    examples: [{ success: true, email_id: '0193a5b2-8d2f-7e5b-a04c-3b7d9f2e5a81', status: 'queued', message: 'Email queued for delivery' }],
  },
);
export type SendEmailResponse = Static<typeof SendEmailResponse>;

export const EmailAttachmentMeta = Type.Object({ filename: Type.String(), type: Type.String(), size: Type.Integer({ minimum: 0 }) });

export const Email = Type.Object({
  id: Uuid,
  to_email: Type.Array(Type.String()),
  from_email: Type.String(),
  subject: Type.String(),
  body: Type.String(),
  html_content: Nullable(Type.String()),
  cc: Type.Array(Type.String()),
  bcc: Type.Array(Type.String()),
  reply_to: Nullable(Type.String()),
  attachments: Type.Array(EmailAttachmentMeta),
  status: EmailStatusSchema,
  provider_message_id: Nullable(Type.String()),
  provider_response: Type.Unknown(),
  error_code: Nullable(Type.String()),
  error_message: Nullable(Type.String()),
  /** who sent it: null for emails from before accounts */
  sent_by: Nullable(SentBy),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export type Email = Static<typeof Email>;

export const EmailPage = Type.Object({ emails: Type.Array(Email), next_cursor: Nullable(Type.String()) });
export type EmailPage = Static<typeof EmailPage>;
export const EmailWithTimeline = Type.Object({ email: Email, timeline: Type.Array(TimelineEntry) });
export type EmailWithTimeline = Static<typeof EmailWithTimeline>;

// ---- session ------------------------------------------------------------------------------

// SessionBody and the rest of sign-in: accounts.ts

// ---- health -------------------------------------------------------------------------------

export const HealthBody = Type.Object({ status: Type.String() }, { additionalProperties: true });
export const ReadinessBody = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]),
  checks: Type.Record(Type.String(), Type.Object({ ok: Type.Boolean(), error: Type.Optional(Type.String()) })),
});
export type ReadinessBody = Static<typeof ReadinessBody>;

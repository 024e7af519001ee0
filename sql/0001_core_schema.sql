-- 0001: the core schema. Forward-only; applied once by `pnpm migrate` inside a transaction.
-- Status enums mirror packages/contracts/src/status.ts (a test checks they agree).
-- Keyset-paginated timestamps are timestamptz(3): a cursor carries a JS Date (milliseconds), and
-- a microsecond value could never equal it, so rows would be skipped at page boundaries.

CREATE TYPE message_status AS ENUM ('queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed', 'received', 'stored');
CREATE TYPE email_status AS ENUM ('queued', 'sending', 'sent', 'deferred', 'delivered', 'bounced', 'dropped', 'failed');
CREATE TYPE message_channel AS ENUM ('sms', 'chat');
CREATE TYPE conversation_channel AS ENUM ('sms', 'chat', 'email');
CREATE TYPE message_direction AS ENUM ('outbound', 'inbound');
CREATE TYPE job_kind AS ENUM ('sms', 'email');

-- One row per pair of participants; id = UUID from SHA-256 of the sorted normalised pair
-- (contract), so both directions of a conversation land on the same row without a lookup.
-- last_message_at / last_message_id / message_count are maintained in the same transaction
-- as each message insert (upsert), so the list never disagrees with the messages.
CREATE TABLE conversations (
  id              uuid PRIMARY KEY,
  participants    text[] NOT NULL CHECK (cardinality(participants) = 2),
  channel         conversation_channel NOT NULL,
  last_message_id uuid,
  last_message_at timestamptz(3) NOT NULL DEFAULT now(),
  message_count   integer NOT NULL DEFAULT 0 CHECK (message_count >= 0),
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
-- GET /api/conversations: most recent activity first, keyset-paginated.
CREATE INDEX conversations_by_activity ON conversations (last_message_at DESC, id DESC);

CREATE TABLE messages (
  id            uuid PRIMARY KEY,
  conversation_id uuid NOT NULL REFERENCES conversations (id),
  from_contact  text NOT NULL,
  to_contact    text NOT NULL,
  body          text NOT NULL,
  channel       message_channel NOT NULL,
  direction     message_direction NOT NULL,
  status        message_status NOT NULL,
  error_code    text,
  error_message text,
  provider_sid  text,
  segments      integer CHECK (segments IS NULL OR segments >= 0),
  -- Worker bookkeeping: how many times a worker claimed it (queued -> sending), and when.
  attempts      integer NOT NULL DEFAULT 0,
  claimed_at    timestamptz,
  created_at    timestamptz(3) NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Twilio's SID is unique: an inbound MessageSid replay, or a status callback, finds one row.
CREATE UNIQUE INDEX messages_provider_sid ON messages (provider_sid) WHERE provider_sid IS NOT NULL;
-- GET /api/conversation/:id/messages: newest first, keyset (created_at, id).
CREATE INDEX messages_by_conversation ON messages (conversation_id, created_at DESC, id DESC);
-- The sweeper and reconciler look for SMS stuck before a final status.
CREATE INDEX messages_in_flight ON messages (updated_at) WHERE status IN ('queued', 'sending');

CREATE TABLE emails (
  id                  uuid PRIMARY KEY,
  to_email            text[] NOT NULL CHECK (cardinality(to_email) >= 1),
  from_email          text NOT NULL,
  subject             text NOT NULL,
  body                text NOT NULL,
  html_content        text,
  cc                  text[] NOT NULL DEFAULT '{}',
  bcc                 text[] NOT NULL DEFAULT '{}',
  reply_to            text,
  -- Metadata only ([{filename, type, size}]); content lives in email_attachments until sent.
  attachments         jsonb NOT NULL DEFAULT '[]'::jsonb,
  status              email_status NOT NULL DEFAULT 'queued',
  provider_message_id text,
  provider_response   jsonb,
  error_code          text,
  error_message       text,
  attempts            integer NOT NULL DEFAULT 0,
  claimed_at          timestamptz,
  created_at          timestamptz(3) NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX emails_by_created ON emails (created_at DESC, id DESC);
CREATE UNIQUE INDEX emails_provider_message_id ON emails (provider_message_id) WHERE provider_message_id IS NOT NULL;
CREATE INDEX emails_in_flight ON emails (updated_at) WHERE status IN ('queued', 'sending');

-- Attachment content, kept apart from the email row and deleted after sending / retention.
CREATE TABLE email_attachments (
  email_id     uuid NOT NULL REFERENCES emails (id) ON DELETE CASCADE,
  position     integer NOT NULL CHECK (position >= 0),
  filename     text NOT NULL,
  content_type text NOT NULL,
  content      bytea NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (email_id, position)
);

-- Transactional outbox (docs/architecture.md, rule 1): written in the same transaction as the
-- message, deleted once JetStream acknowledged the publish. A row still here after its grace
-- period is re-published by a sweeper (FOR UPDATE SKIP LOCKED); dedupe_id is the Nats-Msg-Id, so
-- a double publish inside JetStream's window is dropped, and the worker's claim covers the rest.
CREATE TABLE outbox (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind             job_kind NOT NULL,
  entity_id        uuid NOT NULL,
  dedupe_id        text NOT NULL UNIQUE,
  created_at       timestamptz NOT NULL DEFAULT now(),
  available_at     timestamptz NOT NULL DEFAULT now(),
  publish_attempts integer NOT NULL DEFAULT 0,
  last_error       text
);
CREATE INDEX outbox_due ON outbox (available_at, id);

-- Idempotency-Key (Stripe semantics): scoped per API credential; the first answer is stored
-- and replayed; a different body under the same key is 422; a request in flight is 409.
CREATE TABLE idempotency_keys (
  scope           text NOT NULL,
  key             text NOT NULL,
  method          text NOT NULL,
  path            text NOT NULL,
  request_hash    text NOT NULL,
  state           text NOT NULL CHECK (state IN ('in_progress', 'completed')),
  response_status integer,
  response_body   jsonb,
  locked_until    timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz NOT NULL,
  PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Delivery timeline of a message or an email: every status change and provider event.
CREATE TABLE status_events (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  message_id        uuid REFERENCES messages (id) ON DELETE CASCADE,
  email_id          uuid REFERENCES emails (id) ON DELETE CASCADE,
  status            text NOT NULL,
  provider_code     text,
  source            text NOT NULL,
  detail            text,
  -- Provider's own event id (sg_event_id, I-Twilio-Idempotency-Token): replays are stored once.
  provider_event_id text,
  occurred_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  CHECK ((message_id IS NULL) <> (email_id IS NULL))
);
CREATE INDEX status_events_by_message ON status_events (message_id, id) WHERE message_id IS NOT NULL;
CREATE INDEX status_events_by_email ON status_events (email_id, id) WHERE email_id IS NOT NULL;
CREATE UNIQUE INDEX status_events_provider_event ON status_events (provider_event_id) WHERE provider_event_id IS NOT NULL;

-- Recipients who texted STOP (or Twilio answered 21610): sends to them are refused with 422.
CREATE TABLE opt_outs (
  phone      text PRIMARY KEY,
  reason     text NOT NULL,
  source     text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Team accounts (issue 18): people, their server-side sessions, personal API tokens, one-time
-- invite / reset links, and an append-only audit trail. Adds tables and nullable columns only:
-- no existing row is rewritten (ADD COLUMN without a default touches no row).

-- A person. The email is unique whatever its case (lower(email) index, no citext extension
-- needed). password_hash is null until the person accepts their invite; it is self-describing
-- (services/gateway/src/passwords.ts: scrypt, its parameters, salt and hash).
CREATE TABLE users (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
  email         text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 320),
  role          text NOT NULL CHECK (role IN ('admin', 'agent')),
  password_hash text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  disabled_at   timestamptz
);
CREATE UNIQUE INDEX users_email_unique ON users (lower(email));
CREATE INDEX users_by_created ON users (created_at DESC, id DESC);

-- A signed-in browser. The cookie holds a random id; only its SHA-256 is stored, so a copy of
-- this table signs nobody in. user_id null: signed in with the bootstrap HATCH_API_TOKEN ("API").
CREATE TABLE sessions (
  id_hash      bytea PRIMARY KEY CHECK (octet_length(id_hash) = 32),
  -- the public handle (GET /api/sessions, DELETE /api/sessions/:id): never the cookie's value
  id           uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  user_id      uuid REFERENCES users (id) ON DELETE CASCADE,
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  -- absolute expiry; idle expiry is last_seen_at + the gateway's HATCH_SESSION_IDLE_HOURS
  expires_at   timestamptz NOT NULL,
  client       text CHECK (char_length(client) <= 200),
  address      text
);
CREATE INDEX sessions_by_user ON sessions (user_id, created_at DESC);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Personal API tokens: shown once, stored as SHA-256 (they are 256-bit random: no slow hash needed).
CREATE TABLE api_tokens (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name         text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
  token_hash   bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  expires_at   timestamptz,
  revoked_at   timestamptz
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id, created_at DESC, id DESC);

-- One-time links: an invite (the person sets name and password) or a password reset.
CREATE TABLE invites (
  token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  purpose    text NOT NULL CHECK (purpose IN ('invite', 'reset')),
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at    timestamptz
);
CREATE INDEX invites_by_user ON invites (user_id);

-- The audit trail: ids only, never bodies, passwords or tokens. Append-only: UPDATE is refused,
-- and DELETE only inside the retention purge (purgeAuditEvents sets hatch.audit_purge locally).
CREATE TABLE audit_events (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT clock_timestamp(),
  kind        text NOT NULL CHECK (char_length(kind) BETWEEN 1 AND 60),
  actor_id    uuid,
  -- who acted as a person would read it: a user's email, "API" (the bootstrap token), or the email tried
  actor_label text,
  -- what it was done to: {user_id?, session_id?, token_id?, message_id?, email_id?}
  subject     jsonb NOT NULL DEFAULT '{}'::jsonb,
  address     text
);
CREATE INDEX audit_events_by_at ON audit_events (at);
CREATE INDEX audit_events_by_actor ON audit_events (actor_id, id DESC) WHERE actor_id IS NOT NULL;
CREATE INDEX audit_events_by_kind ON audit_events (kind, id DESC);
CREATE INDEX audit_events_by_subject_user ON audit_events ((subject ->> 'user_id'), id DESC) WHERE subject ? 'user_id';

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('hatch.audit_purge', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

-- Who did it (issue 18): a user, or null for old rows and for the bootstrap token; the source
-- says which of those ('user', 'api-token', 'provider', 'webhook', 'worker') when it is known.
ALTER TABLE messages ADD COLUMN sent_by uuid REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE messages ADD COLUMN sent_by_source text;
ALTER TABLE emails ADD COLUMN sent_by uuid REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE emails ADD COLUMN sent_by_source text;
ALTER TABLE status_events ADD COLUMN sent_by uuid REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE status_events ADD COLUMN sent_by_source text;

-- Failed authentications per client address (issue 14, SECURITY.md "Abuse bounded"):
-- a sliding log of the last attempts, shared by every gateway replica so the limit holds
-- across them. UNLOGGED: losing it in a crash only forgets recent failures, and its writes
-- cost no WAL. Rows whose newest attempt is past the window are purged by the gateway.
CREATE UNLOGGED TABLE auth_failures (
  address text PRIMARY KEY,
  -- at most limit + 1 timestamps, oldest first
  attempts timestamptz[] NOT NULL
);

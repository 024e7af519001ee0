-- SMS spend guard (issue 14, HATCH_SMS_DAILY_LIMIT): outbound SMS accepted per UTC day, all
-- senders and every gateway replica together. One row per day, taken and updated by the same
-- statement that stores the messages (packages/db/src/queries/sms-quota.ts), so the limit holds
-- under concurrent sends on any number of replicas and a rolled-back send takes nothing.
CREATE TABLE sms_daily_counts (
  -- the UTC day
  day        date PRIMARY KEY,
  -- SMS accepted that day (API sends and retries)
  sent       integer NOT NULL CHECK (sent >= 0),
  -- how many the latest statement took: PostgreSQL before 18 has no RETURNING old.*, so this is
  -- how the statement that moved `sent` learns its own share (see sms-quota.ts)
  last_taken integer NOT NULL CHECK (last_taken >= 0)
);

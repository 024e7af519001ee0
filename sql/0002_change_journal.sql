-- 0002: the change journal (issue 6). Triggers on messages and emails append one journal row per
-- change, in the writer's own transaction, so a committed change is never lost even while the
-- realtime bridge is down or reconnecting; the bridge reads the journal in id order and publishes
-- each row to JetStream (<P>_EVENTS) with Nats-Msg-Id = journal id.
--
-- NOTIFY is only a wake-up, at most once per transaction: pg_notify takes a cluster-wide lock at
-- commit and serialises every notifying commit (a few thousand a second: docs/architecture.md,
-- rule 3); one NOTIFY per transaction instead of per row keeps a 100-row transaction to one
-- notification.
--
-- Journal ids come from an identity sequence: they are taken before commit, so a lower id can
-- become visible after a higher one (docs/architecture.md, rule 3). The bridge handles that with
-- the gap horizon (services/realtime-bridge/src/journal-reader.ts); the trigger's part is to make
-- sure the writing transaction has its xid before it takes a journal id (see journal_change below).

CREATE TABLE change_journal (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  table_name      text NOT NULL CHECK (table_name IN ('messages', 'emails')),
  action          text NOT NULL CHECK (action IN ('INSERT', 'UPDATE', 'DELETE')),
  row_id          uuid NOT NULL,
  -- messages only; emails have no conversation
  conversation_id uuid,
  status          text NOT NULL,
  -- The real commit time is unknowable inside the transaction; the time of the change
  -- (clock_timestamp) is the closest, and is what retention and the lag metric use.
  changed_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Retention deletes the oldest rows in bounded batches.
CREATE INDEX change_journal_by_time ON change_journal (changed_at);

-- The bridge's last relayed journal id (only ever increases). One row per bridge group.
CREATE TABLE bridge_positions (
  name       text PRIMARY KEY,
  last_id    bigint NOT NULL DEFAULT 0 CHECK (last_id >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION journal_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  -- The gap horizon relies on this order: the transaction has an xid BEFORE it takes a journal
  -- id. (An AFTER ROW trigger already wrote the row, so the xid exists; this makes it explicit
  -- and costs nothing.)
  PERFORM pg_current_xact_id();
  IF TG_TABLE_NAME = 'messages' THEN
    INSERT INTO change_journal (table_name, action, row_id, conversation_id, status)
    VALUES ('messages', TG_OP, r.id, r.conversation_id, r.status::text);
  ELSE
    INSERT INTO change_journal (table_name, action, row_id, status)
    VALUES ('emails', TG_OP, r.id, r.status::text);
  END IF;
  -- Once per transaction: a transaction-local flag (set_config(..., true) reverts at commit or
  -- rollback, and at ROLLBACK TO SAVEPOINT together with the NOTIFY it guarded).
  IF current_setting('hatch.journal_notified', true) IS DISTINCT FROM 'on' THEN
    PERFORM set_config('hatch.journal_notified', 'on', true);
    PERFORM pg_notify('hatch_changes', '');
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER messages_journal_insert_delete AFTER INSERT OR DELETE ON messages
  FOR EACH ROW EXECUTE FUNCTION journal_change();
CREATE TRIGGER messages_journal_update AFTER UPDATE OF status, body ON messages
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.body IS DISTINCT FROM NEW.body)
  EXECUTE FUNCTION journal_change();
CREATE TRIGGER emails_journal_insert_delete AFTER INSERT OR DELETE ON emails
  FOR EACH ROW EXECUTE FUNCTION journal_change();
CREATE TRIGGER emails_journal_update AFTER UPDATE OF status, body ON emails
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.body IS DISTINCT FROM NEW.body)
  EXECUTE FUNCTION journal_change();

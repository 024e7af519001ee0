-- 0006: the change journal written once per statement instead of once per row (bench P2/P3:
-- the row triggers of 0002 ran the plpgsql function, its xid call, one INSERT and the NOTIFY
-- check for every row, about 8 % of PostgreSQL's CPU per SMS). The rows written are the same:
-- one journal row for every insert and delete, and for every update that changes status or
-- body, in the writer's own transaction, in the order the statement wrote them, and NOTIFY at
-- most once per transaction (0002's rules, unchanged).
--
-- A statement trigger sees the statement's rows through its transition tables. PostgreSQL allows
-- those only without a column list, so the UPDATE trigger fires for every UPDATE of the table and
-- keeps the rows whose status or body differ from the old row (0002's WHEN clause); a statement
-- that wrote no row writes no journal row, takes no xid and sends no NOTIFY.

CREATE FUNCTION journal_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF NOT EXISTS (SELECT 1 FROM old_rows) THEN RETURN NULL; END IF;
  ELSIF NOT EXISTS (SELECT 1 FROM new_rows) THEN
    RETURN NULL;
  END IF;
  -- The gap horizon relies on this order: the transaction has an xid BEFORE it takes a journal
  -- id (0002). The statement wrote rows, so the xid exists; this keeps it explicit.
  PERFORM pg_current_xact_id();
  IF TG_TABLE_NAME = 'messages' THEN
    IF TG_OP = 'INSERT' THEN
      INSERT INTO change_journal (table_name, action, row_id, conversation_id, status)
      SELECT 'messages', 'INSERT', r.id, r.conversation_id, r.status::text FROM new_rows r;
    ELSIF TG_OP = 'DELETE' THEN
      INSERT INTO change_journal (table_name, action, row_id, conversation_id, status)
      SELECT 'messages', 'DELETE', r.id, r.conversation_id, r.status::text FROM old_rows r;
    ELSE
      INSERT INTO change_journal (table_name, action, row_id, conversation_id, status)
      SELECT 'messages', 'UPDATE', r.id, r.conversation_id, r.status::text FROM new_rows r
      WHERE NOT EXISTS (
        SELECT 1 FROM old_rows o
        WHERE o.id = r.id AND o.status IS NOT DISTINCT FROM r.status AND o.body IS NOT DISTINCT FROM r.body
      );
    END IF;
  ELSE
    IF TG_OP = 'INSERT' THEN
      INSERT INTO change_journal (table_name, action, row_id, status)
      SELECT 'emails', 'INSERT', r.id, r.status::text FROM new_rows r;
    ELSIF TG_OP = 'DELETE' THEN
      INSERT INTO change_journal (table_name, action, row_id, status)
      SELECT 'emails', 'DELETE', r.id, r.status::text FROM old_rows r;
    ELSE
      INSERT INTO change_journal (table_name, action, row_id, status)
      SELECT 'emails', 'UPDATE', r.id, r.status::text FROM new_rows r
      WHERE NOT EXISTS (
        SELECT 1 FROM old_rows o
        WHERE o.id = r.id AND o.status IS NOT DISTINCT FROM r.status AND o.body IS NOT DISTINCT FROM r.body
      );
    END IF;
  END IF;
  GET DIAGNOSTICS n = ROW_COUNT;
  -- Once per transaction, as in 0002 (a transaction-local flag, reverted with the NOTIFY it
  -- guarded at rollback or ROLLBACK TO SAVEPOINT).
  IF n > 0 AND current_setting('hatch.journal_notified', true) IS DISTINCT FROM 'on' THEN
    PERFORM set_config('hatch.journal_notified', 'on', true);
    PERFORM pg_notify('hatch_changes', '');
  END IF;
  RETURN NULL;
END
$$;

DROP TRIGGER messages_journal_insert_delete ON messages;
DROP TRIGGER messages_journal_update ON messages;
DROP TRIGGER emails_journal_insert_delete ON emails;
DROP TRIGGER emails_journal_update ON emails;
DROP FUNCTION journal_change();

CREATE TRIGGER messages_journal_insert AFTER INSERT ON messages
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION journal_changes();
CREATE TRIGGER messages_journal_update AFTER UPDATE ON messages
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION journal_changes();
CREATE TRIGGER messages_journal_delete AFTER DELETE ON messages
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION journal_changes();
CREATE TRIGGER emails_journal_insert AFTER INSERT ON emails
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION journal_changes();
CREATE TRIGGER emails_journal_update AFTER UPDATE ON emails
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION journal_changes();
CREATE TRIGGER emails_journal_delete AFTER DELETE ON emails
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION journal_changes();

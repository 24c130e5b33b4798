-- The append-only access log. Rows are inserted, never changed or removed: the triggers
-- below refuse UPDATE, DELETE and TRUNCATE for every role, the owner included.
CREATE TABLE IF NOT EXISTS entries (
    seq             bigserial   PRIMARY KEY,
    event_id        uuid        NOT NULL UNIQUE,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    action          text        NOT NULL,
    outcome         text        NOT NULL,
    actor_id        text        NOT NULL,
    actor_role      text        NOT NULL,
    on_behalf_of    text,
    subjects        text[]      NOT NULL,
    object_type     text        NOT NULL,
    object_id       text,
    source_system   text        NOT NULL,
    source_instance text        NOT NULL,
    purpose         text        NOT NULL,
    trace_id        text,
    canonical       bytea       NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_trace_idx ON entries (trace_id);
CREATE INDEX IF NOT EXISTS entries_subjects_idx ON entries USING gin (subjects);

CREATE OR REPLACE FUNCTION entries_are_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DROP TRIGGER IF EXISTS entries_no_update_delete ON entries;
CREATE TRIGGER entries_no_update_delete BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION entries_are_append_only();
DROP TRIGGER IF EXISTS entries_no_truncate ON entries;
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION entries_are_append_only();

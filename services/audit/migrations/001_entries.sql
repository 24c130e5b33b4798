-- The append-only access log, the leaves of a Merkle tree (RFC 9162 hashing). Rows are
-- inserted, never changed or removed: the triggers below refuse UPDATE, DELETE and
-- TRUNCATE for every role, the owner included.
CREATE TABLE IF NOT EXISTS entries (
    seq             bigserial   PRIMARY KEY,
    leaf_index      bigint      NOT NULL UNIQUE,
    leaf_hash       bytea       NOT NULL,
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

-- Hashes of the perfect subtrees, (level, position): a leaf completes O(log n) of them,
-- and any proof needs O(log n) of them.
CREATE TABLE IF NOT EXISTS tree_nodes (
    level    smallint NOT NULL,
    position bigint   NOT NULL,
    hash     bytea    NOT NULL,
    PRIMARY KEY (level, position)
);

-- Signed tree heads: (size, root, time) signed with the audit service's Ed25519 key, and
-- published on a topic as well, so copies exist outside this database.
CREATE TABLE IF NOT EXISTS tree_heads (
    size       bigint      NOT NULL,
    root       bytea       NOT NULL,
    signed_at  timestamptz NOT NULL,
    key_id     text        NOT NULL,
    signature  bytea       NOT NULL,
    PRIMARY KEY (size, signed_at)
);

CREATE OR REPLACE FUNCTION entries_are_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['entries', 'tree_nodes', 'tree_heads'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %1$s_no_update_delete ON %1$s', t);
        EXECUTE format('CREATE TRIGGER %1$s_no_update_delete BEFORE UPDATE OR DELETE ON %1$s'
                       ' FOR EACH ROW EXECUTE FUNCTION entries_are_append_only()', t);
        EXECUTE format('DROP TRIGGER IF EXISTS %1$s_no_truncate ON %1$s', t);
        EXECUTE format('CREATE TRIGGER %1$s_no_truncate BEFORE TRUNCATE ON %1$s'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION entries_are_append_only()', t);
    END LOOP;
END
$$;

-- Data subjects' access reports (AVG art. 15), kept as produced; read by the privacy
-- officer. Append-only like the log.
CREATE TABLE IF NOT EXISTS subject_reports (
    request_id uuid        PRIMARY KEY,
    report     jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
DROP TRIGGER IF EXISTS subject_reports_no_update_delete ON subject_reports;
CREATE TRIGGER subject_reports_no_update_delete BEFORE UPDATE OR DELETE ON subject_reports
    FOR EACH ROW EXECUTE FUNCTION entries_are_append_only();

-- Retention of the audit log (policy: audit.retention_years). Entries past it go only by a
-- pruning: a signed record of how many leading entries go, the root of the tree they
-- form, and the cutoff. The tree's nodes stay, so every later head, inclusion and
-- consistency proof still verifies, and the pruned range is still attested by its root.
CREATE TABLE IF NOT EXISTS prunings (
    upto        bigint      PRIMARY KEY,
    prefix_root bytea       NOT NULL,
    cutoff      timestamptz NOT NULL,
    pruned_at   timestamptz NOT NULL,
    key_id      text        NOT NULL,
    signature   bytea       NOT NULL
);
DROP TRIGGER IF EXISTS prunings_no_update_delete ON prunings;
CREATE TRIGGER prunings_no_update_delete BEFORE UPDATE OR DELETE ON prunings
    FOR EACH ROW EXECUTE FUNCTION entries_are_append_only();
DROP TRIGGER IF EXISTS prunings_no_truncate ON prunings;
CREATE TRIGGER prunings_no_truncate BEFORE TRUNCATE ON prunings
    FOR EACH STATEMENT EXECUTE FUNCTION entries_are_append_only();

-- An entry may be deleted only when a recorded pruning covers it and it is older than
-- that pruning's cutoff; UPDATE and TRUNCATE stay refused for every role.
CREATE OR REPLACE FUNCTION entries_prune_only() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (
        SELECT 1 FROM prunings p WHERE p.upto > OLD.leaf_index AND OLD.recorded_at < p.cutoff
    ) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit entries are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
DROP TRIGGER IF EXISTS entries_no_update_delete ON entries;
CREATE TRIGGER entries_no_update_delete BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION entries_prune_only();

-- Erasing a subject as a whole is the privacy officer's decision (issue 13): a partner's
-- erasure request ends only its own registrations, and where other organisations'
-- remain, matching asks for a review. The requests and the decisions are append-only
-- like the log: one decision per request, never changed (the primary key refuses a
-- second), and every step is also an entry of the log itself.
CREATE TABLE IF NOT EXISTS erasure_reviews (
    request_id              uuid        PRIMARY KEY,
    subject                 text        NOT NULL,
    partner_id              text        NOT NULL,
    requested_at            timestamptz NOT NULL,
    ended                   integer     NOT NULL,
    organisations_remaining integer     NOT NULL,
    received_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS erasure_decisions (
    request_id uuid        PRIMARY KEY REFERENCES erasure_reviews (request_id),
    approved   boolean     NOT NULL,
    decided_by text        NOT NULL,
    reason     text        NOT NULL,
    decided_at timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['erasure_reviews', 'erasure_decisions'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %1$s_no_update_delete ON %1$s', t);
        EXECUTE format('CREATE TRIGGER %1$s_no_update_delete BEFORE UPDATE OR DELETE ON %1$s'
                       ' FOR EACH ROW EXECUTE FUNCTION entries_are_append_only()', t);
        EXECUTE format('DROP TRIGGER IF EXISTS %1$s_no_truncate ON %1$s', t);
        EXECUTE format('CREATE TRIGGER %1$s_no_truncate BEFORE TRUNCATE ON %1$s'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION entries_are_append_only()', t);
    END LOOP;
END
$$;

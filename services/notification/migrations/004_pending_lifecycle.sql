-- A lifecycle event that overtook its match's MatchRaised (another topic) waits here, and
-- is applied, in arrival order, when the match arrives; nothing is lost or retried blind.
CREATE TABLE IF NOT EXISTS pending_lifecycle (
    event_id    uuid        PRIMARY KEY,
    match_id    uuid        NOT NULL,
    event_type  text        NOT NULL,
    payload     bytea       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS pending_lifecycle_match_idx ON pending_lifecycle (match_id, received_at);

-- After a child's erasure a family match sealed under it goes on for its siblings,
-- without the erased child's pseudonym.
ALTER TABLE matches ALTER COLUMN subject DROP NOT NULL;

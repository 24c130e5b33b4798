-- Erasure of a subject: what notification held about their matches goes; a lifecycle
-- event that arrives for such a match afterwards finds its id here and changes nothing.
CREATE TABLE IF NOT EXISTS forgotten_matches (
    match_id     uuid        PRIMARY KEY,
    forgotten_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_alert_id_fkey;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_alert_id_fkey
    FOREIGN KEY (alert_id) REFERENCES alerts ON DELETE CASCADE;
CREATE INDEX IF NOT EXISTS alerts_subject_idx ON alerts (subject);
CREATE INDEX IF NOT EXISTS matches_subject_idx ON matches (subject);

-- Full verifications of the log started by the privacy officer from the audit page: who
-- started one and when, and once it ended, what it found. A verification that never
-- ended (its process died) stays without an end and is shown as interrupted.
CREATE TABLE IF NOT EXISTS verifications (
    verification_id uuid        PRIMARY KEY,
    started_at      timestamptz NOT NULL DEFAULT now(),
    started_by      text        NOT NULL,
    finished_at     timestamptz,
    entries         bigint,
    problems        jsonb
);
CREATE INDEX IF NOT EXISTS verifications_started_idx ON verifications (started_at DESC);
-- One verification at a time, whichever replica started it.
CREATE UNIQUE INDEX IF NOT EXISTS verifications_one_running
    ON verifications ((true)) WHERE finished_at IS NULL;

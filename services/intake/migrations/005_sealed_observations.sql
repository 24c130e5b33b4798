-- A signal's theme is not written in clear in the signal's own transaction (whose row
-- versions would tie it to the registration): it is held sealed under the week's key
-- (in the key store), padded to a fixed size, and counted later with at least k others
-- in one transaction of the counting job.
CREATE TABLE IF NOT EXISTS pending_observations (
    observation_id uuid        PRIMARY KEY,
    window_id      text        NOT NULL,
    sealed         text        NOT NULL,
    held_at        timestamptz NOT NULL DEFAULT now()
);

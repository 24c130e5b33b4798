-- Theme observations wait here and leave in shuffled batches on a schedule, not in the
-- transaction (and so at the moment) that passes the signal on: published back to back,
-- the two would tie a theme to a pseudonym by their timestamps.
CREATE TABLE IF NOT EXISTS held_observations (
    observation_id uuid        PRIMARY KEY,
    payload        bytea       NOT NULL,
    held_at        timestamptz NOT NULL DEFAULT now()
);

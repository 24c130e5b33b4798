-- The desk's own record of what its workers registered, at the partner. Everything about
-- a registration is sealed (AES-GCM under a key derived from the partner's id key, padded
-- to one size): someone with this database and no key learns how many registrations a
-- worker (a keyed hash) made and when, whether each was sent and withdrawn and why; not
-- of whom, about what or in which wijk.
CREATE TABLE IF NOT EXISTS registrations (
    registration_id uuid PRIMARY KEY,
    partner_id text NOT NULL,
    worker text NOT NULL,  -- the worker id, keyed with the partner's id key
    sealed bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,  -- when Kafka acknowledged it; NULL: not (yet) sent
    withdrawn_at timestamptz,
    withdrawn_reason text CHECK (withdrawn_reason IN ('resolved', 'unjustified')),
    CHECK ((withdrawn_at IS NULL) = (withdrawn_reason IS NULL))
);
CREATE INDEX IF NOT EXISTS registrations_of_worker
    ON registrations (partner_id, worker, created_at DESC);

-- How many elements each worker had pseudonymised per day: the desk's limit.
CREATE TABLE IF NOT EXISTS evaluations (
    partner_id text NOT NULL,
    worker text NOT NULL,
    day date NOT NULL,
    elements integer NOT NULL,
    PRIMARY KEY (partner_id, worker, day)
);

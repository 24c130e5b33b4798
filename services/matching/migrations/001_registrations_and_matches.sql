-- Registrations hold the subject pseudonym, organisation and lifetime; the worker contact,
-- wijk and family links only sealed under the subject's data key (crypto-shredding);
-- never the reason or category of the concern.
CREATE TABLE IF NOT EXISTS registrations (
    registration_id       uuid        PRIMARY KEY,
    subject               text        NOT NULL,
    organisation          text        NOT NULL,
    organisation_category text        NOT NULL,
    sealed                text        NOT NULL,
    registered_at         timestamptz NOT NULL,
    expires_at            timestamptz NOT NULL,
    age_cutoff            date        NOT NULL,
    ended_at              timestamptz,
    end_reason            text,
    archive_until         timestamptz,
    noticed_at            timestamptz
);
CREATE INDEX IF NOT EXISTS registrations_subject_idx ON registrations (subject);
-- The retention job finds what ends next without scanning history.
CREATE INDEX IF NOT EXISTS registrations_expiring_idx
    ON registrations (expires_at) WHERE end_reason IS NULL;
CREATE INDEX IF NOT EXISTS registrations_archive_idx
    ON registrations (archive_until) WHERE archive_until IS NOT NULL;

-- Family clusters as a union-find: every subject and every link (a parent or household
-- pseudonym) is a node; all nodes of a cluster carry the cluster's root.
CREATE TABLE IF NOT EXISTS family_nodes (
    node    text PRIMARY KEY,
    cluster text NOT NULL
);
CREATE INDEX IF NOT EXISTS family_nodes_cluster_idx ON family_nodes (cluster);

CREATE TABLE IF NOT EXISTS matches (
    match_id       uuid        PRIMARY KEY,
    kind           text        NOT NULL,
    key            text        NOT NULL,
    rule           text        NOT NULL,
    policy_version text        NOT NULL,
    status         text        NOT NULL DEFAULT 'open',
    raised_at      timestamptz NOT NULL DEFAULT now(),
    closed_at      timestamptz
);
-- At most one open match per subject (person) or cluster (family), whatever the concurrency.
CREATE UNIQUE INDEX IF NOT EXISTS matches_one_open_per_key
    ON matches (kind, key) WHERE status = 'open';

CREATE TABLE IF NOT EXISTS match_participants (
    match_id        uuid NOT NULL REFERENCES matches (match_id),
    registration_id uuid NOT NULL REFERENCES registrations (registration_id),
    PRIMARY KEY (match_id, registration_id)
);
CREATE INDEX IF NOT EXISTS match_participants_registration_idx
    ON match_participants (registration_id);

-- Wijk x theme aggregates. Only window tokens reach here, never a pseudonym: a token is
-- a keyed hash under its window's key, which intake destroys once the window closed.
CREATE TABLE IF NOT EXISTS theme_tokens (
    wijk      text NOT NULL,
    theme     text NOT NULL,
    window_id text NOT NULL,
    token     text NOT NULL,
    PRIMARY KEY (wijk, theme, window_id, token)
);
CREATE TABLE IF NOT EXISTS theme_counts (
    wijk      text    NOT NULL,
    theme     text    NOT NULL,
    window_id text    NOT NULL,
    children  integer NOT NULL,
    trend     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (wijk, theme, window_id)
);

-- Data keys to shred, written in the transaction that decided it, so a crash between
-- the commit and the key store cannot leave a key behind.
CREATE TABLE IF NOT EXISTS pending_shreds (
    subject    text        PRIMARY KEY,
    decided_at timestamptz NOT NULL DEFAULT now()
);

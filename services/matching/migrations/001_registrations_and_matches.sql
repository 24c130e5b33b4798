-- Registrations hold the subject pseudonym, organisation and lifetime; the worker contact,
-- wijk and family links only sealed under the subject's data key (crypto-shredding);
-- never the reason or category of the concern.
CREATE TABLE IF NOT EXISTS registrations (
    registration_id uuid        PRIMARY KEY,
    subject         text        NOT NULL,
    organisation    text        NOT NULL,
    sealed          text        NOT NULL,
    registered_at   timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS registrations_subject_idx ON registrations (subject, expires_at);

CREATE TABLE IF NOT EXISTS matches (
    match_id       uuid        PRIMARY KEY,
    kind           text        NOT NULL,
    subject        text        NOT NULL,
    rule           text        NOT NULL,
    policy_version text        NOT NULL,
    status         text        NOT NULL DEFAULT 'open',
    raised_at      timestamptz NOT NULL DEFAULT now()
);
-- At most one open person match per subject, whatever the concurrency.
CREATE UNIQUE INDEX IF NOT EXISTS matches_one_open_person_match
    ON matches (subject) WHERE kind = 'person' AND status = 'open';

CREATE TABLE IF NOT EXISTS match_participants (
    match_id        uuid NOT NULL REFERENCES matches (match_id),
    registration_id uuid NOT NULL REFERENCES registrations (registration_id),
    PRIMARY KEY (match_id, registration_id)
);

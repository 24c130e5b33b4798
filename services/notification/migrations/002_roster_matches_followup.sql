-- The roster: wijk -> JGT team -> workers, team lead; and the municipality's regie role.
CREATE TABLE IF NOT EXISTS teams (
    team_id text PRIMARY KEY,
    name    text NOT NULL
);
CREATE TABLE IF NOT EXISTS wijken (
    wijk    text PRIMARY KEY,
    team_id text NOT NULL REFERENCES teams
);
CREATE TABLE IF NOT EXISTS members (
    user_id  text    PRIMARY KEY,
    team_id  text    REFERENCES teams,
    role     text    NOT NULL CHECK (role IN ('worker', 'team_lead', 'regie')),
    name     text    NOT NULL,
    email    text    NOT NULL,
    phone    text,
    category text    NOT NULL,
    active   boolean NOT NULL DEFAULT true,
    CHECK ((role = 'regie') = (team_id IS NULL))
);
CREATE INDEX IF NOT EXISTS members_team_idx ON members (team_id, role) WHERE active;

-- Matches as notification knows them: whom they concern (pseudonym, for the audit log),
-- which team coordinates, who coordinates, and whether contact happened. Never content.
CREATE TABLE IF NOT EXISTS matches (
    match_id        uuid        PRIMARY KEY,
    kind            text        NOT NULL,
    subject         text        NOT NULL,
    family          text,
    wijk            text        NOT NULL,
    team_id         text,
    coordinator_id  text,
    state           text        NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    raised_at       timestamptz NOT NULL,
    closed_at       timestamptz,
    contact_made_at timestamptz
);
CREATE INDEX IF NOT EXISTS matches_family_idx ON matches (family) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS matches_coordinator_idx ON matches (coordinator_id)
    WHERE state = 'open';

-- The registrations of a match: the parties who may see it.
CREATE TABLE IF NOT EXISTS match_parties (
    match_id        uuid NOT NULL REFERENCES matches,
    registration_id uuid NOT NULL,
    worker_id       text NOT NULL,
    worker          jsonb NOT NULL,
    organisation    text NOT NULL,
    PRIMARY KEY (match_id, registration_id)
);
CREATE INDEX IF NOT EXISTS match_parties_worker_idx ON match_parties (worker_id);

-- Alerts gain their occasion, the recipient's part, the subject and the follow-up.
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS occasion text NOT NULL DEFAULT 'raised';
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS part text NOT NULL DEFAULT 'registrant';
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS subject text;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS message text NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS coordinator jsonb;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS acknowledged_at timestamptz;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS escalated_at timestamptz;
ALTER TABLE alerts ALTER COLUMN match_id DROP NOT NULL;
CREATE INDEX IF NOT EXISTS alerts_unacknowledged_idx ON alerts (issued_at)
    WHERE acknowledged_at IS NULL AND escalated_at IS NULL;

-- "Contact made with <worker>" (VIR: afgestemd).
CREATE TABLE IF NOT EXISTS contacts_made (
    match_id    uuid        NOT NULL REFERENCES matches,
    worker_id   text        NOT NULL,
    with_worker text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (match_id, worker_id, with_worker)
);

-- The registering worker's task to inform the family (rule 10).
CREATE TABLE IF NOT EXISTS inform_tasks (
    task_id         uuid        PRIMARY KEY,
    match_id        uuid        NOT NULL REFERENCES matches,
    registration_id uuid        NOT NULL,
    worker_id       text        NOT NULL,
    addressee       text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz
);
CREATE INDEX IF NOT EXISTS inform_tasks_worker_idx ON inform_tasks (worker_id);

-- Match-level escalation to the regie role: once per match.
ALTER TABLE matches ADD COLUMN IF NOT EXISTS escalated_at timestamptz;

-- Deliveries over e-mail and webhooks, retried from here until sent or dead-lettered.
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id     uuid        PRIMARY KEY,
    alert_id        uuid        NOT NULL REFERENCES alerts,
    channel         text        NOT NULL CHECK (channel IN ('email', 'webhook')),
    target          text        NOT NULL,
    state           text        NOT NULL DEFAULT 'pending'
                                CHECK (state IN ('pending', 'sent', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    UNIQUE (alert_id, channel, target)
);
CREATE INDEX IF NOT EXISTS deliveries_due_idx ON deliveries (next_attempt_at)
    WHERE state = 'pending';

-- Anonymous wijk x theme counts (cells under k never arrive here) for the team leads.
CREATE TABLE IF NOT EXISTS wijk_trends (
    wijk              text    NOT NULL,
    theme             text    NOT NULL,
    window_id         text    NOT NULL,
    distinct_children integer NOT NULL,
    trend             boolean NOT NULL DEFAULT false,
    PRIMARY KEY (wijk, theme, window_id)
);

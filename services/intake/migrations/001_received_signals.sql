-- What intake admitted: the signal id and partner, never the content.
CREATE TABLE IF NOT EXISTS received_signals (
    signal_id   uuid        PRIMARY KEY,
    partner_id  text        NOT NULL,
    accepted_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS rejected_signals (
    signal_id   uuid        PRIMARY KEY,
    partner_id  text        NOT NULL,
    reason_code text        NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now()
);

-- Keys of the wijk-trend windows: a child's token is a keyed hash of its pseudonym under
-- the key of one window. Keys are deleted when their window has closed, after which no
-- token can be linked to anyone.
CREATE TABLE IF NOT EXISTS trend_window_keys (
    window_id  text        PRIMARY KEY,
    key        bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

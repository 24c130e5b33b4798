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

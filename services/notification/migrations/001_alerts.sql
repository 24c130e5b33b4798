-- One alert per (match, recipient, occasion): the alert id is derived from them.
CREATE TABLE IF NOT EXISTS alerts (
    alert_id     uuid        PRIMARY KEY,
    match_id     uuid        NOT NULL,
    kind         text        NOT NULL,
    recipient_id text        NOT NULL,
    recipient    jsonb       NOT NULL,
    contacts     jsonb       NOT NULL,
    issued_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS alerts_recipient_idx ON alerts (recipient_id, issued_at DESC);

-- Team leads and the regie role get overviews, not an alert per late alert or quiet match:
-- an escalation is a line of their overview page and waits as a count for their next
-- digest e-mail. An item goes with its alert or match (erasure, retention).
CREATE TABLE IF NOT EXISTS overdue_items (
    item_id      uuid        PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('unacknowledged', 'no-contact')),
    recipient_id text        NOT NULL,
    target       text        NOT NULL,
    match_id     uuid        NOT NULL REFERENCES matches ON DELETE CASCADE,
    alert_id     uuid        REFERENCES alerts ON DELETE CASCADE,
    queued_at    timestamptz NOT NULL DEFAULT now(),
    digest_id    uuid        REFERENCES digests ON DELETE CASCADE,
    CHECK ((kind = 'unacknowledged') = (alert_id IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS overdue_items_waiting_idx ON overdue_items (recipient_id, target)
    WHERE digest_id IS NULL;
CREATE INDEX IF NOT EXISTS overdue_items_digest_idx ON overdue_items (digest_id);
CREATE INDEX IF NOT EXISTS overdue_items_match_idx ON overdue_items (match_id);
CREATE INDEX IF NOT EXISTS overdue_items_alert_idx ON overdue_items (alert_id);

ALTER TABLE digests ADD COLUMN IF NOT EXISTS overdue integer NOT NULL DEFAULT 0;

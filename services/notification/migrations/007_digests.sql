-- E-mail digests: an alert no longer becomes an e-mail of its own. It waits as a digest
-- item of its recipient; at most once per policy interval the items waiting for one
-- worker become one digest (how many cases changed, how many notices) and one e-mail
-- delivery. Webhooks stay per alert: a partner's case system wants each one.
CREATE TABLE IF NOT EXISTS digests (
    digest_id    uuid        PRIMARY KEY,
    recipient_id text        NOT NULL,
    cases        integer     NOT NULL DEFAULT 0,
    notices      integer     NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS digests_recipient_idx ON digests (recipient_id, created_at DESC);

-- An erased alert leaves its digest (the count of an e-mail already composed names no
-- one) but not its item.
CREATE TABLE IF NOT EXISTS digest_items (
    alert_id     uuid        PRIMARY KEY REFERENCES alerts ON DELETE CASCADE,
    recipient_id text        NOT NULL,
    target       text        NOT NULL,
    match_id     uuid,
    new_case     boolean     NOT NULL,
    queued_at    timestamptz NOT NULL DEFAULT now(),
    digest_id    uuid        REFERENCES digests ON DELETE SET NULL
);
CREATE INDEX IF NOT EXISTS digest_items_waiting_idx ON digest_items (recipient_id, target)
    WHERE digest_id IS NULL;
CREATE INDEX IF NOT EXISTS digest_items_digest_idx ON digest_items (digest_id);
CREATE INDEX IF NOT EXISTS alerts_match_recipient_idx ON alerts (match_id, recipient_id);

ALTER TABLE deliveries ALTER COLUMN alert_id DROP NOT NULL;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS digest_id uuid REFERENCES digests ON DELETE CASCADE;
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_one_source;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_one_source
    CHECK ((alert_id IS NULL) <> (digest_id IS NULL));
CREATE UNIQUE INDEX IF NOT EXISTS deliveries_digest_idx ON deliveries (digest_id, channel, target)
    WHERE digest_id IS NOT NULL;

-- E-mails still waiting at the upgrade join the digests instead of going one by one.
INSERT INTO digest_items (alert_id, recipient_id, target, match_id, new_case, queued_at)
SELECT d.alert_id, a.recipient_id, d.target, a.match_id, a.occasion = 'raised', d.created_at
FROM deliveries d JOIN alerts a USING (alert_id)
WHERE d.channel = 'email' AND d.state = 'pending'
ON CONFLICT DO NOTHING;
DELETE FROM deliveries WHERE channel = 'email' AND state = 'pending' AND alert_id IS NOT NULL;

-- Blinded elements evaluated per partner and UTC day, against the partner's daily budget:
-- counted here, in one row per partner and day, so that the budget holds across replicas.
CREATE TABLE IF NOT EXISTS daily_use (
    partner_id text   NOT NULL,
    day        date   NOT NULL,
    elements   bigint NOT NULL,
    PRIMARY KEY (partner_id, day)
);

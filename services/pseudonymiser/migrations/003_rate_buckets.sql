-- Each partner's token bucket (blinded elements per second), one row shared by every
-- replica: the rate limit holds however many replicas answer (issue 13, point 5).
CREATE TABLE IF NOT EXISTS rate_buckets (
    partner_id text             PRIMARY KEY,
    level      double precision NOT NULL,
    at         timestamptz      NOT NULL
);

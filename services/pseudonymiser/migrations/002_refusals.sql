-- Requests refused past the budget, per partner and day: the first is audited, the rest
-- only counted (a partner hammering past its budget must not flood the audit log).
ALTER TABLE daily_use ADD COLUMN IF NOT EXISTS refused bigint NOT NULL DEFAULT 0;

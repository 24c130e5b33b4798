-- Only the month in which a youth turns 23 may be kept, never the day: the day is the
-- date of birth shifted by 23 years and, beside the wijk, re-identifies almost every
-- child. Stored days become the first of their month, and every moment derived from
-- them (the end of an active registration, the end of its archive, the end of one that
-- ended at the age limit) moves to that first day, so no column gives the day back.
-- Moving the end earlier is the conservative side of rule 5: never registered at 23.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'registrations'
          AND column_name = 'age_cutoff'
    ) THEN
        UPDATE registrations
           SET expires_at = LEAST(
                   expires_at,
                   date_trunc('month', age_cutoff)::date::timestamp AT TIME ZONE 'UTC'),
               -- LEAST ignores NULL: a live registration must keep no archive end.
               archive_until = CASE WHEN archive_until IS NULL THEN NULL ELSE LEAST(
                   archive_until,
                   date_trunc('month', age_cutoff)::date::timestamp AT TIME ZONE 'UTC') END,
               ended_at = CASE WHEN end_reason = 'age-limit'
                   THEN date_trunc('month', age_cutoff)::date::timestamp AT TIME ZONE 'UTC'
                   ELSE ended_at END,
               age_cutoff = date_trunc('month', age_cutoff)::date;
        ALTER TABLE registrations RENAME COLUMN age_cutoff TO age_limit_from;
    END IF;
END
$$;
ALTER TABLE registrations DROP CONSTRAINT IF EXISTS registrations_age_limit_month;
ALTER TABLE registrations ADD CONSTRAINT registrations_age_limit_month
    CHECK (extract(day FROM age_limit_from) = 1);

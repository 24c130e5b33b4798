-- The count of a wijk x theme week last published to the team leads (never under k).
ALTER TABLE theme_counts ADD COLUMN IF NOT EXISTS published integer NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS theme_counts_unpublished_idx ON theme_counts (window_id)
    WHERE children <> published;

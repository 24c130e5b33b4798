-- The wijk x theme counts are made here, not downstream: intake alone sees the theme next
-- to a child's pseudonym, so it counts distinct children per cell itself and only cells of
-- at least k children leave it (on a schedule, shuffled). Before, one observation per
-- signal (theme, wijk, day and a window token) travelled to matching.
CREATE TABLE IF NOT EXISTS theme_tokens (
    wijk      text NOT NULL,
    theme     text NOT NULL,
    window_id text NOT NULL,
    -- A keyed hash under the window's own key (in the key store): unlinkable once the
    -- window's key is destroyed, when these rows go too.
    token     text NOT NULL,
    PRIMARY KEY (wijk, theme, window_id, token)
);

CREATE TABLE IF NOT EXISTS theme_cells (
    wijk      text NOT NULL,
    theme     text NOT NULL,
    window_id text NOT NULL,
    children  integer NOT NULL DEFAULT 0,
    -- The count last published; a cell is published again only when it has changed.
    published integer NOT NULL DEFAULT 0,
    PRIMARY KEY (wijk, theme, window_id)
);

-- Observations held by the previous version are counted, not lost.
INSERT INTO theme_tokens (wijk, theme, window_id, token)
SELECT o ->> 'wijk', o ->> 'theme', o ->> 'window', o ->> 'child_token'
FROM (SELECT convert_from(payload, 'UTF8')::jsonb AS o FROM held_observations) AS held
ON CONFLICT DO NOTHING;

INSERT INTO theme_cells (wijk, theme, window_id, children)
SELECT wijk, theme, window_id, count(*) FROM theme_tokens GROUP BY wijk, theme, window_id
ON CONFLICT DO NOTHING;

DROP TABLE IF EXISTS held_observations;

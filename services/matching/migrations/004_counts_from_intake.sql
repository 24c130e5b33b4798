-- Matching receives counts per cell from intake (cells of at least k only) and no longer
-- counts children itself: the window tokens are not needed here any more.
DROP TABLE IF EXISTS theme_tokens;

-- Trend window keys move to the key store, wrapped by the KEK beside the data keys and
-- destroyed there: a key in clear in this schema would let anyone who reads it link the
-- child tokens on aggregates.wijk-theme back to matching pseudonyms, and so to themes.
-- This table keeps only which windows have a key and since when. (The window open at the
-- upgrade gets a new key: a child seen before and after it may count twice that week.)
ALTER TABLE trend_window_keys DROP COLUMN IF EXISTS key;
ALTER TABLE trend_window_keys RENAME TO trend_windows;

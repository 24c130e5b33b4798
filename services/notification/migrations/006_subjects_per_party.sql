-- Whose registration each party of a match is (from the sealed contacts), and whose data
-- each alert discloses: an access report lists only what concerns its own subject, also
-- in a family match (one subject per match named the newest sibling only).
ALTER TABLE match_parties ADD COLUMN IF NOT EXISTS subject text;
UPDATE match_parties p SET subject = m.subject
FROM matches m WHERE p.match_id = m.match_id AND p.subject IS NULL AND m.kind = 'person';
CREATE INDEX IF NOT EXISTS match_parties_subject_idx ON match_parties (subject);

ALTER TABLE alerts ADD COLUMN IF NOT EXISTS subjects text[] NOT NULL DEFAULT '{}';
UPDATE alerts SET subjects = ARRAY[subject] WHERE subject IS NOT NULL;
ALTER TABLE alerts DROP COLUMN IF EXISTS subject;
CREATE INDEX IF NOT EXISTS alerts_subjects_idx ON alerts USING gin (subjects);

-- A family match has no one subject: its children are its parties'.
UPDATE matches SET subject = NULL WHERE kind = 'family';

-- Which of its own registrations a party's organisation sees in a match: the partner's
-- reference (its case or dossier number), the number its producer gave the registration
-- and when it was registered. Sealed under the party's subject's data key (the
-- registration id as AAD): a copy of this database without the keys shows no dossier
-- number, and an erased subject's is unreadable at once.
ALTER TABLE match_parties ADD COLUMN IF NOT EXISTS yours text;

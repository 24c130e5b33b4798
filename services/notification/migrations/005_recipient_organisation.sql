-- A registering worker is known by their id *at their organisation*: two organisations
-- may both have a "j.jansen", and a partner cannot make someone of another organisation
-- a party by naming them. Staff of the municipality (roster) have no organisation here.
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS recipient_organisation text;

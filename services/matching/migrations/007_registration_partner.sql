-- Which partner made a registration: a partner's erasure request ends only its own
-- registrations (issue 13). Registrations made before this migration did not keep it:
-- they are never ended by a partner's request, and count as another organisation's when
-- the privacy officer reviews erasing the subject as a whole.
ALTER TABLE registrations ADD COLUMN partner_id text;
CREATE INDEX registrations_subject_partner ON registrations (subject, partner_id);

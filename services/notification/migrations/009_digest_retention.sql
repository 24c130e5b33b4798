-- A digest that goes (retention) takes its items with it: what it told is told, and
-- must not queue again for the next digest.
ALTER TABLE digest_items DROP CONSTRAINT IF EXISTS digest_items_digest_id_fkey;
ALTER TABLE digest_items ADD CONSTRAINT digest_items_digest_id_fkey
    FOREIGN KEY (digest_id) REFERENCES digests ON DELETE CASCADE;

-- The key store: one data key per subject, wrapped by the key-encryption key. Deleting a
-- row shreds every copy of that subject's sealed fields, wherever they are kept.
CREATE TABLE IF NOT EXISTS data_keys (
    subject     text        PRIMARY KEY,
    kek_version text        NOT NULL,
    wrapped_key bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Owned by the key-store role (vs_keystore), which `vroegsignaal migrate` hands it to:
-- no service's own role can read or delete a data key (shared/dbroles.py).

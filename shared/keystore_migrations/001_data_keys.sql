-- The key store: one data key per subject, wrapped by the key-encryption key. Deleting a
-- row shreds every copy of that subject's sealed fields, wherever they are kept.
CREATE TABLE IF NOT EXISTS data_keys (
    subject     text        PRIMARY KEY,
    kek_version text        NOT NULL,
    wrapped_key bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vroegsignaal_keystore') THEN
        CREATE ROLE vroegsignaal_keystore NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA keystore TO vroegsignaal_keystore;
GRANT SELECT, INSERT, DELETE ON data_keys TO vroegsignaal_keystore;

-- A family match is sealed under a key of its family cluster, not under one child's:
-- `sealed_under` names that key in the key store (random: it identifies no one). It is
-- replaced, and the old key shredded, whenever a child of the family is erased, so that
-- child's contacts in earlier family-match events become unreadable everywhere.
CREATE TABLE IF NOT EXISTS family_keys (
    cluster      text PRIMARY KEY,
    sealed_under text NOT NULL UNIQUE
);

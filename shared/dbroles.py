"""Database roles: each process logs in as its own role, and can do only its own job.

- `vs_migrator` owns every service's schema and everything in it, and runs the
  migrations (`vroegsignaal migrate`); no service logs in as it. So no service can alter,
  disable or drop what it does not own — the audit log's append-only triggers included.
- `vs_<service>` (pseudonymiser, intake, matching, notification, audit) may read and write
  the rows of its own schema and nothing else; the audit service may only add to its
  log (and prune it, which the log's own triggers guard).
- `vs_keystore_owner` (no login) owns the key store's schema; `vs_keystore` is the login
  through which a service that seals or opens reaches it (`KEYSTORE_DATABASE_URL`, used
  by shared/keystore.py only): it may read, add and delete keys, never alter or drop the
  table that holds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote, urlsplit, urlunsplit

from shared.db import Conn

MIGRATOR = "vs_migrator"
KEYSTORE = "vs_keystore"
KEYSTORE_OWNER = "vs_keystore_owner"
SERVICE_ROLES: Mapping[str, str] = {
    name: f"vs_{name}" for name in ("pseudonymiser", "intake", "matching", "notification", "audit")
}
ALL_ROLES = (MIGRATOR, KEYSTORE, *SERVICE_ROLES.values())
# Roles that own and never log in.
OWNER_ROLES = (KEYSTORE_OWNER,)

# The audit log is append-only: its service adds, reads, and prunes entries past their
# retention (the tables' triggers allow only a lawful pruning); it changes nothing.
APPEND_ONLY: Mapping[str, Mapping[str, str]] = {
    "audit": {
        "entries": "SELECT, INSERT, DELETE",
        "tree_nodes": "SELECT, INSERT",
        "tree_heads": "SELECT, INSERT",
        "subject_reports": "SELECT, INSERT",
        "prunings": "SELECT, INSERT",
        "erasure_reviews": "SELECT, INSERT",
        "erasure_decisions": "SELECT, INSERT",
    }
}


def role_url(url: str, role: str, password: str | None) -> str:
    """`url` (a PostgreSQL URL) logging in as `role` instead."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = quote(role, safe="") + (f":{quote(password, safe='')}" if password else "")
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}{port}"))


async def ensure_roles(
    conn: Conn, passwords: Mapping[str, str], roles: Sequence[str] = (*ALL_ROLES, *OWNER_ROLES)
) -> None:
    """Make each of `roles` that is missing, each a plain login (an owner role without
    login): no superuser, no role or database creation, not inheriting another role's
    rights; set each password given. Roles that exist are left as they are (on Kubernetes
    CloudNativePG declares them: the migration role may not alter roles there)."""
    for role in roles:
        if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            await conn.execute(
                await conn.fetchval(
                    "SELECT format('CREATE ROLE %I %s NOSUPERUSER NOCREATEDB NOCREATEROLE"
                    " NOINHERIT NOBYPASSRLS', $1::text, $2::text)",
                    role,
                    "NOLOGIN" if role in OWNER_ROLES else "LOGIN",
                )
            )
        if role in passwords and role not in OWNER_ROLES:
            await conn.execute(
                await conn.fetchval(
                    "SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)",
                    role,
                    passwords[role],
                )
            )


async def hand_over(conn: Conn, schema: str, owner: str) -> None:
    """Make `owner` the owner of `schema` and of everything in it (a schema migrated by
    an earlier version belonged to whoever ran the services). What `owner` owns already
    is left alone (the migration role need not own the key store's to run this)."""
    current = await conn.fetchval(
        "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1", schema
    )
    if current != owner:
        await conn.execute(f'ALTER SCHEMA "{schema}" OWNER TO {owner}')
    # Tables first: a sequence a table owns (serial, identity) follows its table, and
    # cannot be given away on its own; then what is still left (standalone sequences).
    for kinds, what in ((["r", "p", "v", "m"], "TABLE"), (["S"], "SEQUENCE")):
        objects = await conn.fetch(
            "SELECT c.relname AS name FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = $1 AND c.relkind::text = ANY($3::text[])"
            " AND pg_get_userbyid(c.relowner) <> $2",
            schema,
            owner,
            kinds,
        )
        for o in objects:
            await conn.execute(f'ALTER {what} "{schema}"."{o["name"]}" OWNER TO {owner}')
    functions = await conn.fetch(
        "SELECT p.oid::regprocedure::text AS signature FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = $1 AND pg_get_userbyid(p.proowner) <> $2",
        schema,
        owner,
    )
    for f in functions:
        await conn.execute(f"ALTER FUNCTION {f['signature']} OWNER TO {owner}")


async def grant_service(conn: Conn, schema: str, role: str) -> None:
    """The rows of its own schema, and nothing else: no DDL, no other schema."""
    await conn.execute(f'REVOKE ALL ON SCHEMA "{schema}" FROM PUBLIC')
    await conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
    await conn.execute(
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO {role}'
    )
    await conn.execute(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "{schema}" TO {role}')
    # Which migrations ran is the migration role's record: readable, not writable.
    await conn.execute(f'REVOKE ALL ON "{schema}".schema_migrations FROM {role}')
    await conn.execute(f'GRANT SELECT ON "{schema}".schema_migrations TO {role}')
    for table, rights in APPEND_ONLY.get(schema, {}).items():
        await conn.execute(f'REVOKE ALL ON "{schema}"."{table}" FROM {role}')
        await conn.execute(f'GRANT {rights} ON "{schema}"."{table}" TO {role}')


async def grant_keystore(conn: Conn, schema: str) -> None:
    """The key store's login: its keys' rows, no DDL (the schema is its owner role's, as
    which the grants are made)."""
    await conn.execute(f"SET ROLE {KEYSTORE_OWNER}")
    try:
        await conn.execute(f'REVOKE ALL ON SCHEMA "{schema}" FROM PUBLIC')
        await conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {KEYSTORE}')
        await conn.execute(f'GRANT SELECT, INSERT, DELETE ON "{schema}".data_keys TO {KEYSTORE}')
    finally:
        await conn.execute("RESET ROLE")

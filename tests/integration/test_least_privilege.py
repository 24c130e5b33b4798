"""Least privilege in the real PostgreSQL: each process's role tries what is not its job
(another service's rows, the key store's keys, the audit log's guards, any DDL) and is
refused; the migration role owns every schema, the key-store role the key store's."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from shared.dbroles import KEYSTORE, KEYSTORE_OWNER, MIGRATOR, SERVICE_ROLES, role_url
from shared.settings import Settings
from tests.conftest import keys_url
from vroegsignaal.provision.database import provision
from vroegsignaal.provision.secrets import Secrets

pytestmark = pytest.mark.integration

Refused = asyncpg.InsufficientPrivilegeError


async def refused(conn: asyncpg.Connection, *attempts: str) -> None:
    """Each statement is refused for want of a privilege."""
    for attempt in attempts:
        with pytest.raises(Refused):
            await conn.execute(attempt)


async def login(settings: Settings, secrets: Secrets, role: str) -> asyncpg.Connection:
    return await asyncpg.connect(
        role_url(settings.database_url, role, secrets.database_passwords()[role])
    )


@pytest.mark.parametrize("service", sorted(SERVICE_ROLES))
async def test_a_service_role_reaches_its_own_rows_and_nothing_else(
    settings: Settings, secrets: Secrets, service: str
) -> None:
    conn = await login(settings, secrets, SERVICE_ROLES[service])
    try:
        # Its own job: the rows of its own schema.
        async with conn.transaction():
            await conn.execute(f'DELETE FROM "{service}".processed_messages')
            assert await conn.fetchval(f'SELECT count(*) FROM "{service}".outbox') == 0
        for other in sorted(set(SERVICE_ROLES) - {service}):
            await refused(
                conn,
                f'SELECT count(*) FROM "{other}".outbox',
                f'DELETE FROM "{other}".processed_messages',
                f'TRUNCATE "{other}".outbox',
            )
        # No data key, directly: they are in a database of their own, which only the key
        # store's own login may even connect to.
        assert not await conn.fetchval("SELECT to_regclass('keystore.data_keys') IS NOT NULL")
        with pytest.raises(Refused, match="permission denied for database"):
            await asyncpg.connect(
                role_url(
                    keys_url(settings),
                    SERVICE_ROLES[service],
                    secrets.database_passwords()[SERVICE_ROLES[service]],
                )
            )
        # No change to what it does not own: no DDL, not even in its own schema; no
        # rewriting which migrations ran; no temporary table to shadow one of the log's.
        await refused(
            conn,
            f'DELETE FROM "{service}".schema_migrations',
            "CREATE TEMPORARY TABLE prunings (upto bigint, cutoff timestamptz)",
            f'CREATE TABLE "{service}".sneaky (a int)',
            f'ALTER TABLE "{service}".outbox ADD COLUMN sneaky int',
            f'DROP TABLE "{service}".processed_messages',
        )
        # The audit log's guards stay on: no trigger disabled or dropped, no entry changed.
        await refused(
            conn,
            "ALTER TABLE audit.entries DISABLE TRIGGER ALL",
            "DROP TRIGGER entries_no_update_delete ON audit.entries",
            "UPDATE audit.entries SET purpose = 'rewritten'",
            "UPDATE audit.tree_heads SET size = 0",
            "DELETE FROM audit.subject_reports",
        )
    finally:
        await conn.close()


async def test_the_audit_role_can_add_to_its_log_but_not_rewrite_or_delete_it(
    settings: Settings, secrets: Secrets
) -> None:
    admin = await asyncpg.connect(settings.database_url)
    conn = await login(settings, secrets, SERVICE_ROLES["audit"])
    try:
        await admin.execute(
            "INSERT INTO audit.tree_nodes (level, position, hash) VALUES (0, 0, $1)", b"x" * 32
        )
        assert await conn.fetchval("SELECT count(*) FROM audit.tree_nodes") == 1
        with pytest.raises(Refused):
            await conn.execute("UPDATE audit.tree_nodes SET hash = $1", b"y" * 32)
        with pytest.raises(Refused):
            await conn.execute("DELETE FROM audit.tree_nodes")
        # Deleting entries is pruning, which the log's own trigger allows only lawfully.
        await admin.execute(
            "INSERT INTO audit.entries (leaf_index, leaf_hash, event_id, occurred_at,"
            " recorded_at, action, outcome, actor_id, actor_role, subjects, object_type,"
            " source_system, source_instance, purpose, canonical) VALUES (0, $1,"
            " gen_random_uuid(), now(), now(), 'read', 'success', 'a', 'service', '{}', 'x',"
            " 'test', 'test-1', 'p', 'c')",
            b"h" * 32,
        )
        with pytest.raises(Refused, match="append-only"):  # the trigger, not a grant
            await conn.execute("DELETE FROM audit.entries")
        with pytest.raises(Refused):
            await conn.execute("ALTER TABLE audit.entries DISABLE TRIGGER entries_no_update_delete")
    finally:
        await conn.close()
        await admin.close()


async def test_the_key_store_role_owns_the_keys_and_reaches_no_service(
    settings: Settings, secrets: Secrets
) -> None:
    password = secrets.database_passwords()[KEYSTORE]
    conn = await asyncpg.connect(role_url(keys_url(settings), KEYSTORE, password))
    in_main = await login(settings, secrets, KEYSTORE)
    admin = await asyncpg.connect(settings.database_url)
    keys_admin = await asyncpg.connect(keys_url(settings))
    try:
        assert await conn.fetchval("SELECT count(*) FROM keystore.data_keys") == 0
        # Its keys' rows, never the table that holds them.
        await refused(
            conn,
            "TRUNCATE keystore.data_keys",
            "ALTER TABLE keystore.data_keys ADD COLUMN sneaky int",
            "DROP TABLE keystore.data_keys",
        )
        for service in sorted(SERVICE_ROLES):
            with pytest.raises(Refused):
                await in_main.execute(f'SELECT count(*) FROM "{service}".outbox')
        query = (
            "SELECT n.nspname AS schema, pg_get_userbyid(c.relowner) AS owner FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = ANY($1) AND c.relkind = 'r'"
        )
        owners = await admin.fetch(query, [*SERVICE_ROLES, "keystore"])
        keys = await keys_admin.fetch(query, ["keystore"])
        assert {r["owner"] for r in keys} == {KEYSTORE_OWNER}
        # The application's database holds no key: a backup of it restores none.
        assert {r["schema"] for r in owners} == set(SERVICE_ROLES)
        assert {r["owner"] for r in owners} == {MIGRATOR}
        roles = await admin.fetch(
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles"
            " WHERE rolname = ANY($1)",
            [*SERVICE_ROLES.values(), KEYSTORE, MIGRATOR],
        )
        assert len(roles) == len(SERVICE_ROLES) + 2
        assert not any(r["rolsuper"] or r["rolcreaterole"] or r["rolcreatedb"] for r in roles)
    finally:
        for c in (conn, in_main, admin, keys_admin):
            await c.close()


async def test_migrate_runs_again_and_again_as_a_database_owner_without_superuser(
    settings: Settings, secrets: Secrets
) -> None:
    """As on CloudNativePG: the database belongs to vs_migrator, which is no superuser and
    may act as the key store's owner role; the roles exist already (the operator made them).
    Setting up the database works, and works again for the next release."""
    name = f"owned_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(settings.database_url)
    try:
        # The key store's database too (on CloudNativePG a cluster of its own).
        await admin.execute(f'CREATE DATABASE "{name}" OWNER {MIGRATOR}')
        await admin.execute(f'CREATE DATABASE "{name}_keys" OWNER {MIGRATOR}')
        await admin.execute(f"GRANT {KEYSTORE_OWNER} TO {MIGRATOR}")
        as_owner = role_url(settings.database_url, MIGRATOR, None).rsplit("/", 1)[0] + f"/{name}"
        first = await provision(as_owner, {})
        again = await provision(as_owner, {})
        assert all(first.values()) and not any(again.values())
        conn = await asyncpg.connect(
            role_url(settings.database_url, SERVICE_ROLES["intake"], None).rsplit("/", 1)[0]
            + f"/{name}"
        )
        try:
            assert await conn.fetchval("SELECT count(*) FROM intake.outbox") == 0
            assert not await conn.fetchval("SELECT to_regclass('keystore.data_keys') IS NOT NULL")
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}_keys" WITH (FORCE)')
        await admin.execute(f"REVOKE {KEYSTORE_OWNER} FROM {MIGRATOR}")
        await admin.close()

"""Setting up the database: the roles, the schemas, the migrations and the grants.

Run by `vroegsignaal migrate` (and `dev up`, and the tests) as an administrator of the
database, before the services start; the services themselves never migrate and log in
as roles that could not (shared/dbroles.py says who may do what).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import asyncpg
from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator

from shared import keystore
from shared.config import load_yaml_model
from shared.db import migrate, migration_files
from shared.dbroles import (
    ALL_ROLES,
    KEYSTORE,
    KEYSTORE_OWNER,
    MIGRATOR,
    SERVICE_ROLES,
    ensure_roles,
    grant_keystore,
    grant_service,
    hand_over,
    role_url,
)
from vroegsignaal.provision.errors import StackError
from vroegsignaal.services import SERVICES


class DatabasePasswords(BaseModel):
    """`passwords: {<role>: <password>}`, as 'vroegsignaal secrets init' writes them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    passwords: dict[str, Annotated[str, StringConstraints(min_length=16)]]

    @field_validator("passwords")
    @classmethod
    def _known_roles(cls, passwords: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(passwords) - set(ALL_ROLES))
        if unknown:
            raise ValueError(f"no such database role {unknown}; the roles: {ALL_ROLES}")
        return passwords


def load_passwords(path: Path | None) -> dict[str, str]:
    """The roles' passwords (`role: password`), from the file `secrets init` writes."""
    if path is None:
        return {}
    what = "the database roles' passwords ('vroegsignaal secrets init' writes them)"
    return dict(load_yaml_model(DatabasePasswords, path, error=StackError, what=what).passwords)


def login_of(
    admin_url: str,
    process: str,
    passwords: Mapping[str, str],
    keys_admin_url: str | None = None,
) -> dict[str, str]:
    """DATABASE_URL (and KEYSTORE_DATABASE_URL, the keys' own database, where it seals or
    opens) of one process."""
    env = {}
    if process in SERVICE_ROLES:
        role = SERVICE_ROLES[process]
        env["DATABASE_URL"] = role_url(admin_url, role, passwords.get(role))
    if process in ("intake", "matching", "notification"):
        keys = keys_admin_url or keystore.keys_database_url(admin_url)
        env["KEYSTORE_DATABASE_URL"] = role_url(keys, KEYSTORE, passwords.get(KEYSTORE))
    return env


async def _database_exists(admin_url: str, url: str) -> None:
    """Make the keys' database beside the application's when it is on the same server
    and missing (a cluster of its own comes with its database)."""
    try:
        conn = await asyncpg.connect(url)
    except asyncpg.InvalidCatalogNameError:
        name = url.rpartition("/")[2].split("?")[0]
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
    else:
        await conn.close()


async def provision_keystore(
    admin_url: str, keys_url: str, passwords: Mapping[str, str]
) -> list[str]:
    """The key store's own database: its roles, schema, migrations and grants; only its
    login may connect. Keys an earlier version kept in the application's database move
    here, and their old schema goes (a backup of the application's data holds no key)."""
    await _database_exists(admin_url, keys_url)
    conn = await asyncpg.connect(keys_url)
    try:
        # Only the roles this database needs: on Kubernetes it is a cluster of its own,
        # which declares no service's role (and the migration role may create none).
        await ensure_roles(conn, passwords, (MIGRATOR, KEYSTORE, KEYSTORE_OWNER))
        if await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", keystore.SCHEMA):
            await hand_over(conn, keystore.SCHEMA, KEYSTORE_OWNER)
        database = await conn.fetchval("SELECT current_database()")
        await conn.execute(f'REVOKE CONNECT, TEMPORARY ON DATABASE "{database}" FROM PUBLIC')
        await conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO {KEYSTORE}')
    finally:
        await conn.close()
    done = await migrate(
        keys_url, keystore.SCHEMA, sorted(keystore.MIGRATIONS.glob("*.sql")), owner=KEYSTORE_OWNER
    )
    conn = await asyncpg.connect(keys_url)
    try:
        await grant_keystore(conn, keystore.SCHEMA)
        await _move_keys(admin_url, conn)
    finally:
        await conn.close()
    return done


async def _move_keys(admin_url: str, keys: asyncpg.Connection) -> None:
    """Move the keys an earlier version kept in the application's database, as their
    owner role, in one transaction that locks them: no old process can add or shred a key
    meanwhile. Every key must arrive exactly (subject, KEK version, wrapped key); a
    different key already there for a subject stops the move, nothing dropped."""
    main = await asyncpg.connect(admin_url)
    try:
        if not await main.fetchval("SELECT to_regclass('keystore.data_keys') IS NOT NULL"):
            return
        # (A schema from before the database roles belonged to whoever ran the services.)
        await hand_over(main, keystore.SCHEMA, KEYSTORE_OWNER)
        async with main.transaction():
            await main.execute(f"SET LOCAL ROLE {KEYSTORE_OWNER}")
            await main.execute("LOCK TABLE keystore.data_keys IN ACCESS EXCLUSIVE MODE")
            rows = await main.fetch(
                "SELECT subject, kek_version, wrapped_key, created_at FROM keystore.data_keys"
            )
            async with keys.transaction():
                await keys.executemany(
                    "INSERT INTO keystore.data_keys (subject, kek_version, wrapped_key,"
                    " created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (subject) DO NOTHING",
                    [tuple(r) for r in rows],
                )
                arrived = {
                    (r["subject"], r["kek_version"], bytes(r["wrapped_key"]))
                    for r in await keys.fetch(
                        "SELECT subject, kek_version, wrapped_key FROM keystore.data_keys"
                        " WHERE subject = ANY($1)",
                        [r["subject"] for r in rows],
                    )
                }
                differ = [
                    r["subject"]
                    for r in rows
                    if (r["subject"], r["kek_version"], bytes(r["wrapped_key"])) not in arrived
                ]
                if differ:
                    raise StackError(
                        f"moving the data keys to their own database: {len(differ)} of "
                        f"{len(rows)} subjects already have another key there; nothing moved "
                        "or dropped. Compare the two key stores before running "
                        "'vroegsignaal migrate' again"
                    )
            await main.execute("DROP SCHEMA keystore CASCADE")
    finally:
        await main.close()


async def provision(
    admin_url: str, passwords: Mapping[str, str], keys_admin_url: str | None = None
) -> dict[str, list[str]]:
    """Roles, schemas, migrations and grants, idempotently, in the application's database
    and the key store's own (`keys_admin_url`; beside the application's by default);
    what each schema applied now."""
    # The key store first: its database and the keys an earlier version kept here move
    # before any service schema is brought to this version, so no service of this
    # version starts (they refuse with migrations pending) before the keys are in place.
    done = {
        keystore.SCHEMA: await provision_keystore(
            admin_url, keys_admin_url or keystore.keys_database_url(admin_url), passwords
        )
    }
    conn = await asyncpg.connect(admin_url)
    try:
        # Its key-store owner role only for an earlier version's keys, which move above.
        await ensure_roles(conn, passwords, (MIGRATOR, KEYSTORE_OWNER, *SERVICE_ROLES.values()))
        for schema in SERVICES:
            if await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
                await hand_over(conn, schema, MIGRATOR)
        # No role makes temporary tables but the migrations' own: a temporary table
        # named like one of the audit log's could otherwise shadow it in its triggers.
        database = await conn.fetchval("SELECT current_database()")
        await conn.execute(f'REVOKE TEMPORARY ON DATABASE "{database}" FROM PUBLIC')
        await conn.execute(f'GRANT TEMPORARY ON DATABASE "{database}" TO {MIGRATOR}')
    finally:
        await conn.close()
    for spec in SERVICES.values():
        done[spec.name] = await migrate(
            admin_url, spec.name, migration_files(spec.directory), owner=MIGRATOR
        )
    conn = await asyncpg.connect(admin_url)
    try:
        for schema, role in SERVICE_ROLES.items():
            await grant_service(conn, schema, role)
    finally:
        await conn.close()
    return done

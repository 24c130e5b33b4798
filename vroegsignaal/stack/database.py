"""Setting up the database: the roles, the schemas, the migrations and the grants.

Run by `vroegsignaal migrate` (and `dev up`, and the tests) as an administrator of the
database, before the services start; the services themselves never migrate and log in
as roles that could not (shared/dbroles.py says who may do what).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import asyncpg
import yaml

from shared import keystore
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
from vroegsignaal.services import SERVICES
from vroegsignaal.stack.errors import StackError


def load_passwords(path: Path | None) -> dict[str, str]:
    """The roles' passwords (`role: password`), from the file `secrets init` writes."""
    if path is None:
        return {}
    try:
        doc = yaml.safe_load(path.read_text())
        passwords = {str(k): str(v) for k, v in doc["passwords"].items()}
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise StackError(
            f"{path}: expected 'passwords: {{<role>: <password>}}' ({exc}); "
            "'vroegsignaal secrets init' writes one"
        ) from None
    unknown = sorted(set(passwords) - set(ALL_ROLES))
    if unknown:
        raise StackError(f"{path}: no such database role {unknown}; the roles: {ALL_ROLES}")
    return passwords


def login_of(admin_url: str, process: str, passwords: Mapping[str, str]) -> dict[str, str]:
    """DATABASE_URL (and KEYSTORE_DATABASE_URL where it seals or opens) of one process."""
    env = {}
    if process in SERVICE_ROLES:
        role = SERVICE_ROLES[process]
        env["DATABASE_URL"] = role_url(admin_url, role, passwords.get(role))
    if process in ("intake", "matching", "notification"):
        env["KEYSTORE_DATABASE_URL"] = role_url(admin_url, KEYSTORE, passwords.get(KEYSTORE))
    return env


async def provision(admin_url: str, passwords: Mapping[str, str]) -> dict[str, list[str]]:
    """Roles, schemas, migrations and grants, idempotently; what each schema applied now."""
    conn = await asyncpg.connect(admin_url)
    try:
        await ensure_roles(conn, passwords)
        owners = {**dict.fromkeys(SERVICES, MIGRATOR), keystore.SCHEMA: KEYSTORE_OWNER}
        for schema, owner in owners.items():
            if await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
                await hand_over(conn, schema, owner)
        # No role makes temporary tables but the migrations' own: a temporary table
        # named like one of the audit log's could otherwise shadow it in its triggers.
        database = await conn.fetchval("SELECT current_database()")
        await conn.execute(f'REVOKE TEMPORARY ON DATABASE "{database}" FROM PUBLIC')
        await conn.execute(f'GRANT TEMPORARY ON DATABASE "{database}" TO {MIGRATOR}')
    finally:
        await conn.close()
    done = {
        spec.name: await migrate(
            admin_url, spec.name, migration_files(spec.directory), owner=MIGRATOR
        )
        for spec in SERVICES.values()
    }
    done[keystore.SCHEMA] = await migrate(
        admin_url,
        keystore.SCHEMA,
        sorted(keystore.MIGRATIONS.glob("*.sql")),
        owner=KEYSTORE_OWNER,
    )
    conn = await asyncpg.connect(admin_url)
    try:
        await grant_keystore(conn, keystore.SCHEMA)
        for schema, role in SERVICE_ROLES.items():
            await grant_service(conn, schema, role)
    finally:
        await conn.close()
    return done

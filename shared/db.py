"""PostgreSQL plumbing: the one pool factory, the migration runner, the idempotent
consumer and the advisory locks.

Each service owns one schema in the database and never reads another's. Migrations are
plain SQL files applied in name order, once, under an advisory lock so that several
instances starting together don't race.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

SHARED_MIGRATIONS = Path(__file__).parent / "migrations"

# A connection as handlers see it: a pooled proxy or a plain connection.
Conn = asyncpg.Connection | PoolConnectionProxy


def lock_id(name: str) -> int:
    """The advisory lock id of a name: the first 64 bits of its SHA-256. Every lock in
    the project is named (`subject:<pseudonym>`, `match:<id>`, `audit:tree`, ...)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


# How the previous release took a lock, as (SQL expression of $1, the argument): taken as
# well until every instance runs this release, so instances of both exclude each other
# during a rolling upgrade (see the operators' guide, "Upgrading").
Previously = Callable[[str], tuple[str, object]]


def hashtext(name: str) -> tuple[str, object]:
    """The release before took notification's locks as hashtext(name)."""
    return "hashtext($1)", name


async def lock(conn: Conn, names: Iterable[str], *, previously: Previously | None = None) -> None:
    """Serialise work on these names across instances until the transaction ends. Always
    in sorted order, so two transactions never wait for each other in a circle."""
    for name in sorted(set(names)):
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_id(name))
        if previously is not None:
            expression, argument = previously(name)
            await conn.execute(f"SELECT pg_advisory_xact_lock({expression})", argument)


async def try_lock(conn: Conn, name: str, *, previously: Previously | None = None) -> bool:
    """Take the lock of `name` until the transaction ends, if no one holds it. When the
    previous release's lock is the one taken, this one stays held until the transaction
    ends: end it (as DigestComposer.run_once does by returning)."""
    if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", lock_id(name)):
        return False
    if previously is None:
        return True
    expression, argument = previously(name)
    return bool(await conn.fetchval(f"SELECT pg_try_advisory_xact_lock({expression})", argument))


class DatabaseUnavailableError(RuntimeError):
    """The database could not be reached; the message says which URL and what to do."""


async def create_pool(
    database_url: str,
    schema: str,
    *,
    max_size: int = 10,
    init: Any = None,
) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(
            database_url,
            min_size=1,
            max_size=max_size,
            init=init,
            server_settings={"search_path": schema, "application_name": f"vroegsignaal-{schema}"},
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailableError(
            f"cannot connect to PostgreSQL at {redact(database_url)}: {exc}. "
            "Start it (make run starts a local one) or set DATABASE_URL."
        ) from exc
    assert pool is not None
    return pool


def redact(url: str) -> str:
    """A database URL without its password, for messages."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"


def migration_files(service_dir: Path) -> list[Path]:
    return sorted(SHARED_MIGRATIONS.glob("*.sql")) + sorted(
        (service_dir / "migrations").glob("*.sql")
    )


async def migrate(
    database_url: str, schema: str, files: Sequence[Path], *, owner: str | None = None
) -> list[str]:
    """Apply the not yet applied files to `schema`; return the names applied now. With
    `owner`, the schema is that role's and the files run as it (SET ROLE), so what they
    make is the owner's too (see shared/dbroles.py)."""
    conn = await asyncpg.connect(database_url)
    applied_now: list[str] = []
    try:
        # Session-level (not the transaction's): held across each file's transaction.
        migrations_lock = lock_id(schema)
        await conn.execute("SELECT pg_advisory_lock($1)", migrations_lock)
        try:
            authorization = f" AUTHORIZATION {owner}" if owner else ""
            # Made only where it is missing: a login given its schema by the database's
            # administrator (the partner's desk) has no right to create one.
            if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"{authorization}')
            if owner:
                await conn.execute(f"SET ROLE {owner}")
            await conn.execute(f'SET search_path TO "{schema}"')
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
            for path in files:
                name = f"{path.parent.parent.name}/{path.name}"
                if name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(path.read_text())
                    await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
                applied_now.append(name)
        finally:
            await conn.execute("RESET ROLE")
            await conn.execute("SELECT pg_advisory_unlock($1)", migrations_lock)
    finally:
        await conn.close()
    return applied_now


async def pending_migrations(database_url: str, schema: str, files: Sequence[Path]) -> list[str]:
    """The files not yet applied to `schema` (all of them when it was never migrated)."""
    conn = await asyncpg.connect(database_url)
    try:
        known = await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".schema_migrations')
        done = (
            {r["name"] for r in await conn.fetch(f'SELECT name FROM "{schema}".schema_migrations')}
            if known
            else set()
        )
    finally:
        await conn.close()
    return [
        f"{p.parent.parent.name}/{p.name}"
        for p in files
        if f"{p.parent.parent.name}/{p.name}" not in done
    ]


async def claim_message(conn: Conn, consumer: str, message_id: uuid.UUID) -> bool:
    """Record that `consumer` processes `message_id`; False when it already did.

    Call inside the transaction that applies the message's state change, so the record
    and the change commit or roll back together.
    """
    row = await conn.fetchrow(
        "INSERT INTO processed_messages (consumer, message_id) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING RETURNING message_id",
        consumer,
        message_id,
    )
    return row is not None

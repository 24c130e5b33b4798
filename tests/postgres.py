"""A migrated service schema on a database of its own, for repository tests: created
once per test module, each test in a transaction that is rolled back."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from shared.db import migrate, migration_files

SERVICES = Path(__file__).resolve().parents[1] / "services"


@asynccontextmanager
async def scratch_database(server_url: str, prefix: str = "test") -> AsyncIterator[str]:
    """A new, empty database on the server of `server_url`; dropped afterwards (with
    the key store's beside it, if a test made one)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    head, _, _ = server_url.rpartition("/")
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"{head}/{name}"
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            for dropped in (name, f"{name}_keys"):
                with contextlib.suppress(asyncpg.PostgresError):
                    await admin.execute(f'DROP DATABASE IF EXISTS "{dropped}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def migrated_database(server_url: str, service: str) -> AsyncIterator[str]:
    """A new database with `service`'s schema migrated; dropped afterwards."""
    async with scratch_database(server_url, f"test_{service}") as url:
        await migrate(url, service, migration_files(SERVICES / service))
        yield url


@asynccontextmanager
async def rolled_back(url: str, service: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to `service`'s schema inside a transaction that is rolled back."""
    conn = await asyncpg.connect(url, server_settings={"search_path": service})
    try:
        transaction = conn.transaction()
        await transaction.start()
        try:
            yield conn
        finally:
            await transaction.rollback()
    finally:
        await conn.close()

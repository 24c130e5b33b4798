"""A migrated service schema on the test's own database, for repository tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from shared.db import migrate, migration_files

SERVICES = Path(__file__).resolve().parents[1] / "services"


@asynccontextmanager
async def service_schema(database_url: str, service: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to `service`'s schema, migrated; closed afterwards."""
    await migrate(database_url, service, migration_files(SERVICES / service))
    conn = await asyncpg.connect(database_url, server_settings={"search_path": service})
    try:
        yield conn
    finally:
        await conn.close()

"""Matching's PostgreSQL repository keeps the repository contract (the service's)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from services.matching.store import PostgresRepository
from shared.db import migrate, migration_files
from tests.repository_contract import MatchingRepositoryContract

pytestmark = pytest.mark.integration

MATCHING = Path(__file__).resolve().parents[2] / "services" / "matching"


class TestPostgresRepository(MatchingRepositoryContract):
    @pytest.fixture
    async def repo(self, database_url: str) -> AsyncIterator[PostgresRepository]:
        await migrate(database_url, "matching", migration_files(MATCHING))
        conn = await asyncpg.connect(database_url, server_settings={"search_path": "matching"})
        try:
            async with conn.transaction():
                yield PostgresRepository(conn)
        finally:
            await conn.close()

"""Matching's PostgreSQL repository keeps the repository contract (the service's)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.matching.store import PostgresRepository
from tests.matching_repository_contract import MatchingRepositoryContract
from tests.postgres import service_schema

pytestmark = pytest.mark.integration


class TestPostgresRepository(MatchingRepositoryContract):
    @pytest.fixture
    async def repo(self, database_url: str) -> AsyncIterator[PostgresRepository]:
        async with service_schema(database_url, "matching") as conn, conn.transaction():
            yield PostgresRepository(conn)

"""Matching's PostgreSQL repository keeps the repository contract (the service's)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.matching.store import PostgresRepository
from tests.matching_repository_contract import MatchingRepositoryContract
from tests.postgres import migrated_database, rolled_back
from vroegsignaal.dev.stack.local import Infrastructure

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def matching_database(infra: Infrastructure) -> AsyncIterator[str]:
    async with migrated_database(infra.database_url, "matching") as url:
        yield url


class TestPostgresRepository(MatchingRepositoryContract):
    @pytest.fixture
    async def repo(self, matching_database: str) -> AsyncIterator[PostgresRepository]:
        async with rolled_back(matching_database, "matching") as conn:
            yield PostgresRepository(conn)

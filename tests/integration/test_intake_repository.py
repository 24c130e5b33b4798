"""Intake's PostgreSQL repository keeps the repository contract (the service's)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.intake.store import PostgresRepository
from tests.intake_repository_contract import IntakeRepositoryContract
from tests.postgres import migrated_database, rolled_back
from vroegsignaal.dev.stack.local import Infrastructure

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def intake_database(infra: Infrastructure) -> AsyncIterator[str]:
    async with migrated_database(infra.database_url, "intake") as url:
        yield url


class TestPostgresRepository(IntakeRepositoryContract):
    @pytest.fixture
    async def repo(self, intake_database: str) -> AsyncIterator[PostgresRepository]:
        async with rolled_back(intake_database, "intake") as conn:
            yield PostgresRepository(conn)

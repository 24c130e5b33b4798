"""Intake's PostgreSQL repository keeps the repository contract (the service's)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.intake.store import PostgresRepository
from tests.intake_repository_contract import IntakeRepositoryContract
from tests.postgres import service_schema

pytestmark = pytest.mark.integration


class TestPostgresRepository(IntakeRepositoryContract):
    @pytest.fixture
    async def repo(self, database_url: str) -> AsyncIterator[PostgresRepository]:
        async with service_schema(database_url, "intake") as conn:
            yield PostgresRepository(conn)

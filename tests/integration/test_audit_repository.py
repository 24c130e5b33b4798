"""Audit's PostgreSQL repository keeps the repository contract (the service's)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.audit.store import PostgresRepository
from tests.audit_repository_contract import AuditRepositoryContract
from tests.postgres import migrated_database, rolled_back
from vroegsignaal.dev.stack.local import Infrastructure

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def audit_database(infra: Infrastructure) -> AsyncIterator[str]:
    async with migrated_database(infra.database_url, "audit") as url:
        yield url


class TestPostgresRepository(AuditRepositoryContract):
    @pytest.fixture
    async def repo(self, audit_database: str) -> AsyncIterator[PostgresRepository]:
        async with rolled_back(audit_database, "audit") as conn:
            yield PostgresRepository(conn)

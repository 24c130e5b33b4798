"""Audit's in-memory repository keeps the repository contract (the use-case tests')."""

from __future__ import annotations

import pytest

from services.audit.memory import InMemoryRepository
from tests.audit_repository_contract import AuditRepositoryContract


class TestInMemoryRepository(AuditRepositoryContract):
    @pytest.fixture
    def repo(self) -> InMemoryRepository:
        return InMemoryRepository()

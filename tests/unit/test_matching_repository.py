"""Matching's in-memory repository keeps the repository contract (the replay's)."""

from __future__ import annotations

import pytest

from services.matching.memory import InMemoryRepository
from tests.matching_repository_contract import MatchingRepositoryContract


class TestInMemoryRepository(MatchingRepositoryContract):
    @pytest.fixture
    def repo(self) -> InMemoryRepository:
        return InMemoryRepository()

"""Intake's in-memory repository keeps the repository contract."""

from __future__ import annotations

import pytest

from services.intake.memory import InMemoryRepository
from tests.intake_repository_contract import IntakeRepositoryContract


class TestInMemoryRepository(IntakeRepositoryContract):
    @pytest.fixture
    def repo(self) -> InMemoryRepository:
        return InMemoryRepository()

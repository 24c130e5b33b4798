"""Notification's in-memory repository keeps the repository contract (the use-case tests')."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from services.notification.memory import InMemoryRepository
from shared.contracts import OrganisationCategory, WorkerContact
from tests.notification_repository_contract import NotificationRepositoryContract


class MemoryRows:
    """tests/notification_repository_contract.Rows over the repository's own tables."""

    def __init__(self, repo: InMemoryRepository) -> None:
        self.repo = repo

    async def team(self, team_id: str, *wijken: str) -> None:
        self.repo.add_team(team_id, f"Team {team_id}", wijken)

    async def member(
        self,
        who: WorkerContact,
        role: str,
        team_id: str | None = None,
        *,
        category: OrganisationCategory = OrganisationCategory.JEUGDHULP,
        active: bool = True,
    ) -> None:
        self.repo.add_member(who, role, team_id, category=category, active=active)

    async def set_active(self, user_id: str, active: bool) -> None:
        self.repo.set_active(user_id, active)

    async def issued(self, alert_id: uuid.UUID, at: datetime) -> None:
        self.repo.alerts[alert_id].issued_at = at

    async def acknowledge(self, alert_id: uuid.UUID, at: datetime) -> None:
        self.repo.acknowledge(alert_id, at)

    async def record_contact(
        self, match_id: uuid.UUID, worker_id: str, with_worker: str, at: datetime
    ) -> None:
        self.repo.record_contact(match_id, worker_id, with_worker, at)

    async def complete_task(
        self, match_id: uuid.UUID, registration_id: uuid.UUID, at: datetime
    ) -> None:
        for task_id, t in list(self.repo.tasks.items()):
            if (t.match_id, t.registration_id) == (match_id, registration_id):
                self.repo.complete_task(task_id, at)

    async def digest(self, recipient: WorkerContact, created_at: datetime, state: str) -> None:
        self.repo.add_digest(recipient.worker_id, recipient.email, created_at, state)

    async def alert(self, alert_id: uuid.UUID) -> tuple[list[str], list[str]] | None:
        kept = self.repo.alerts.get(alert_id)
        if kept is None:
            return None
        return list(kept.subjects), sorted(c.worker_id for c in kept.alert.contacts)

    async def contacts_made(self, match_id: uuid.UUID) -> set[tuple[str, str]]:
        return {(w, with_) for m, w, with_ in self.repo.contacts_made if m == match_id}

    async def yours(self, match_id: uuid.UUID, registration_id: uuid.UUID) -> str | None:
        return self.repo.parties_[(match_id, registration_id)].yours

    async def digest_items(self, recipient_id: str) -> set[tuple[uuid.UUID, bool, bool]]:
        return {
            (i, item.new_case, item.digest_id is not None)
            for i, item in self.repo.digest_items.items()
            if item.recipient_id == recipient_id
        }

    async def overdue_items(self) -> set[tuple[uuid.UUID, str]]:
        return {(i, item.recipient_id) for i, item in self.repo.overdue_items.items()}

    async def deliveries(self) -> set[tuple[uuid.UUID | None, str, str]]:
        return {(d.alert_id, d.channel, d.target) for d in self.repo.deliveries.values()}

    async def trend(self, wijk: str, theme: str, window: str) -> tuple[int, bool] | None:
        kept = self.repo.trends.get((wijk, theme, window))
        return (kept.children, kept.trend) if kept is not None else None


class TestInMemoryRepository(NotificationRepositoryContract):
    @pytest.fixture
    def repo(self) -> InMemoryRepository:
        return InMemoryRepository()

    @pytest.fixture
    def rows(self, repo: InMemoryRepository) -> MemoryRows:
        return MemoryRows(repo)

"""Notification's PostgreSQL repository keeps the repository contract (the service's)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from services.notification import store
from services.notification.store.repository import PostgresRepository
from shared.contracts import OrganisationCategory, WorkerContact
from shared.db import Conn
from tests.notification_repository_contract import NotificationRepositoryContract
from tests.postgres import migrated_database, rolled_back
from vroegsignaal.dev.stack.local import Infrastructure

pytestmark = pytest.mark.integration


class PostgresRows:
    """tests/notification_repository_contract.Rows in notification's schema: the
    inbox's writes through the store, the rest in plain SQL."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def team(self, team_id: str, *wijken: str) -> None:
        await self.conn.execute(
            "INSERT INTO teams (team_id, name) VALUES ($1, $2)", team_id, f"Team {team_id}"
        )
        await self.conn.executemany(
            "INSERT INTO wijken (wijk, team_id) VALUES ($1, $2)", [(w, team_id) for w in wijken]
        )

    async def member(
        self,
        who: WorkerContact,
        role: str,
        team_id: str | None = None,
        *,
        category: OrganisationCategory = OrganisationCategory.JEUGDHULP,
        active: bool = True,
    ) -> None:
        await self.conn.execute(
            "INSERT INTO members (user_id, team_id, role, name, email, phone, category, active)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            who.worker_id,
            team_id,
            role,
            who.display_name,
            who.email,
            who.phone,
            category.value,
            active,
        )

    async def set_active(self, user_id: str, active: bool) -> None:
        await self.conn.execute(
            "UPDATE members SET active = $2 WHERE user_id = $1", user_id, active
        )

    async def issued(self, alert_id: uuid.UUID, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE alerts SET issued_at = $2 WHERE alert_id = $1", alert_id, at
        )

    async def acknowledge(self, alert_id: uuid.UUID, at: datetime) -> None:
        await store.acknowledge(self.conn, alert_id, at)

    async def record_contact(
        self, match_id: uuid.UUID, worker_id: str, with_worker: str, at: datetime
    ) -> None:
        await store.record_contact(self.conn, match_id, worker_id, with_worker, at)

    async def complete_task(
        self, match_id: uuid.UUID, registration_id: uuid.UUID, at: datetime
    ) -> None:
        await self.conn.execute(
            "UPDATE inform_tasks SET done_at = $3 WHERE match_id = $1 AND registration_id = $2",
            match_id,
            registration_id,
            at,
        )

    async def digest(self, recipient: WorkerContact, created_at: datetime, state: str) -> None:
        digest_id = uuid.uuid4()
        await self.conn.execute(
            "INSERT INTO digests (digest_id, recipient_id, created_at) VALUES ($1, $2, $3)",
            digest_id,
            recipient.worker_id,
            created_at,
        )
        for table in ("digest_items", "overdue_items"):
            await self.conn.execute(
                f"UPDATE {table} SET digest_id = $1"
                " WHERE recipient_id = $2 AND target = $3 AND digest_id IS NULL",
                digest_id,
                recipient.worker_id,
                recipient.email,
            )
        await self.conn.execute(
            "INSERT INTO deliveries (delivery_id, digest_id, channel, target, state)"
            " VALUES ($1, $2, 'email', $3, $4)",
            uuid.uuid5(digest_id, f"email/{recipient.email}"),
            digest_id,
            recipient.email,
            state,
        )

    async def alert(self, alert_id: uuid.UUID) -> tuple[list[str], list[str]] | None:
        row = await self.conn.fetchrow(
            "SELECT subjects, contacts FROM alerts WHERE alert_id = $1", alert_id
        )
        if row is None:
            return None
        return list(row["subjects"]), sorted(c["worker_id"] for c in json.loads(row["contacts"]))

    async def contacts_made(self, match_id: uuid.UUID) -> set[tuple[str, str]]:
        return {
            (c["worker_id"], c["with_worker"])
            for c in await store.contacts_made(self.conn, match_id)
        }

    async def yours(self, match_id: uuid.UUID, registration_id: uuid.UUID) -> str | None:
        found: str | None = await self.conn.fetchval(
            "SELECT yours FROM match_parties WHERE match_id = $1 AND registration_id = $2",
            match_id,
            registration_id,
        )
        return found

    async def digest_items(self, recipient_id: str) -> set[tuple[uuid.UUID, bool, bool]]:
        rows = await self.conn.fetch(
            "SELECT alert_id, new_case, digest_id IS NOT NULL AS taken FROM digest_items"
            " WHERE recipient_id = $1",
            recipient_id,
        )
        return {(r["alert_id"], r["new_case"], r["taken"]) for r in rows}

    async def overdue_items(self) -> set[tuple[uuid.UUID, str]]:
        rows = await self.conn.fetch("SELECT item_id, recipient_id FROM overdue_items")
        return {(r["item_id"], r["recipient_id"]) for r in rows}

    async def deliveries(self) -> set[tuple[uuid.UUID | None, str, str]]:
        rows = await self.conn.fetch("SELECT alert_id, channel, target FROM deliveries")
        return {(r["alert_id"], r["channel"], r["target"]) for r in rows}

    async def trend(self, wijk: str, theme: str, window: str) -> tuple[int, bool] | None:
        cells = await store.trend_cells(self.conn, [wijk])
        return next(
            (
                (c["children"], c["trend"])
                for c in cells
                if (c["theme"], c["window"]) == (theme, window)
            ),
            None,
        )


@pytest.fixture(scope="module")
async def notification_database(infra: Infrastructure) -> AsyncIterator[str]:
    async with migrated_database(infra.database_url, "notification") as url:
        yield url


class TestPostgresRepository(NotificationRepositoryContract):
    @pytest.fixture
    async def repo(self, notification_database: str) -> AsyncIterator[PostgresRepository]:
        async with rolled_back(notification_database, "notification") as conn:
            yield PostgresRepository(conn)

    @pytest.fixture
    def rows(self, repo: PostgresRepository) -> PostgresRows:
        return PostgresRows(repo.conn)

"""ports.NotificationRepository on PostgreSQL: the store's queries (one module per
aggregate) and the roster's, bound to the caller's transaction, with typed rows."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from services.notification import roster
from services.notification.domain import About, Alert, Overdue, TeamWorker
from services.notification.ports import KnownMatch, LateAlert, QuietMatch
from services.notification.store import (
    alerts,
    deliveries,
    followup,
    forgetting,
    matches,
    ordering,
    tasks,
    trends,
)
from shared.contracts import MatchContact, MatchKind, WorkerContact
from shared.db import Conn


def _known(row: Any) -> KnownMatch:
    return KnownMatch(
        row["match_id"],
        MatchKind(row["kind"]),
        row["family"],
        row["wijk"],
        row["team_id"],
        row["coordinator_id"],
    )


class PostgresRepository:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def lock_match(self, match_id: uuid.UUID) -> None:
        await ordering.lock_match(self.conn, match_id)

    async def lock_assignment(self, team_id: str) -> None:
        await matches.lock_assignment(self.conn, team_id)

    async def match(self, match_id: uuid.UUID) -> KnownMatch | None:
        row = await matches.match(self.conn, match_id)
        return _known(row) if row is not None else None

    async def add_match(
        self,
        *,
        match_id: uuid.UUID,
        kind: str,
        subject: str | None,
        family: str | None,
        wijk: str,
        team_id: str | None,
        coordinator_id: str | None,
        raised_at: datetime,
    ) -> bool:
        return await matches.add_match(
            self.conn,
            match_id=match_id,
            kind=kind,
            subject=subject,
            family=family,
            wijk=wijk,
            team_id=team_id,
            coordinator_id=coordinator_id,
            raised_at=raised_at,
        )

    async def add_parties(
        self,
        match_id: uuid.UUID,
        contacts: Sequence[MatchContact],
        yours: Mapping[uuid.UUID, str] | None = None,
    ) -> None:
        await matches.add_parties(self.conn, match_id, contacts, yours)

    async def parties(self, match_id: uuid.UUID) -> list[tuple[WorkerContact, str]]:
        return await matches.parties(self.conn, match_id)

    async def drop_parties(self, match_id: uuid.UUID, registrations: Sequence[uuid.UUID]) -> int:
        return await ordering.drop_parties(self.conn, match_id, registrations)

    async def about(self, match_id: uuid.UUID) -> About:
        return await matches.about(self.conn, match_id)

    async def about_many(self, match_ids: Sequence[uuid.UUID]) -> list[str]:
        return await matches.about_many(self.conn, match_ids)

    async def close_match(self, match_id: uuid.UUID, at: datetime) -> bool:
        return await matches.close_match(self.conn, match_id, at)

    async def reassign(
        self,
        match_id: uuid.UUID,
        *,
        wijk: str,
        team_id: str | None,
        coordinator_id: str | None,
    ) -> None:
        await matches.reassign(
            self.conn, match_id, wijk=wijk, team_id=team_id, coordinator_id=coordinator_id
        )

    async def family_coordinator(self, family: str | None) -> str | None:
        return await matches.family_coordinator(self.conn, family)

    async def member(self, user_id: str) -> TeamWorker | None:
        return await matches.member(self.conn, user_id)

    async def team_workers(self, team_id: str) -> list[TeamWorker]:
        return await matches.team_workers(self.conn, team_id)

    async def orphaned(self) -> list[KnownMatch]:
        return [_known(r) for r in await ordering.orphaned(self.conn)]

    async def park(
        self, event_id: uuid.UUID, match_id: uuid.UUID, kind: str, payload: bytes
    ) -> None:
        await ordering.park(self.conn, event_id, match_id, kind, payload)

    async def parked(self, match_id: uuid.UUID) -> list[tuple[str, bytes]]:
        return await ordering.parked(self.conn, match_id)

    async def forget_match_id(self, match_id: uuid.UUID) -> None:
        await ordering.forget_match_id(self.conn, match_id)

    async def forgotten(self, match_id: uuid.UUID) -> bool:
        return await forgetting.forgotten(self.conn, match_id)

    async def matches_of(self, subject: str) -> list[uuid.UUID]:
        return await ordering.matches_of(self.conn, subject)

    async def forget_subject(
        self, subject: str, registrations: Sequence[uuid.UUID]
    ) -> tuple[int, int]:
        return await forgetting.forget_subject(self.conn, subject, registrations)

    async def expired(self, closed_before: datetime) -> tuple[list[uuid.UUID], int]:
        return await forgetting.expired(self.conn, closed_before)

    async def forget_matches(self, match_ids: Sequence[uuid.UUID]) -> int:
        return await forgetting.forget_matches(self.conn, match_ids)

    async def prune_digests(self, before: datetime) -> int:
        return await deliveries.prune_digests(self.conn, before)

    async def add_alert(
        self, alert: Alert, subjects: Sequence[str], organisation: str | None = None
    ) -> bool:
        return await alerts.add_alert(self.conn, alert, subjects, organisation)

    async def queue_for_digest(self, alert: Alert) -> None:
        await deliveries.queue_for_digest(self.conn, alert)

    async def add_delivery(self, alert_id: uuid.UUID, channel: str, target: str) -> None:
        await deliveries.add_delivery(self.conn, alert_id, channel, target)

    async def add_task(
        self, *, match_id: uuid.UUID, registration_id: uuid.UUID, worker_id: str, addressee: str
    ) -> bool:
        return await tasks.add_task(
            self.conn,
            match_id=match_id,
            registration_id=registration_id,
            worker_id=worker_id,
            addressee=addressee,
        )

    async def tell_live(self, recipient_id: str) -> None:
        await alerts.tell_live(self.conn, recipient_id)

    async def add_trend_cell(
        self, wijk: str, theme: str, window: str, children: int, trend: bool
    ) -> None:
        await trends.add_trend_cell(self.conn, wijk, theme, window, children, trend)

    async def unacknowledged(self, issued_before: datetime) -> list[LateAlert]:
        return [
            LateAlert(
                r["alert_id"], r["match_id"], r["issued_at"], tuple(r["subjects"]), r["team_id"]
            )
            for r in await followup.unacknowledged(self.conn, issued_before)
        ]

    async def without_contact(self, raised_before: datetime) -> list[QuietMatch]:
        return [
            QuietMatch(r["match_id"], r["raised_at"])
            for r in await followup.without_contact(self.conn, raised_before)
        ]

    async def mark_alert_escalated(self, alert_id: uuid.UUID, at: datetime) -> None:
        await followup.mark_alert_escalated(self.conn, alert_id, at)

    async def mark_match_escalated(self, match_id: uuid.UUID, at: datetime) -> None:
        await followup.mark_match_escalated(self.conn, match_id, at)

    async def queue_overdue(self, items: Sequence[Overdue]) -> None:
        await followup.queue_overdue(self.conn, items)

    async def team_of(self, wijk: str) -> str | None:
        return await roster.team_of(self.conn, wijk)

    async def person(self, user_id: str) -> WorkerContact | None:
        return await roster.person(self.conn, user_id)

    async def regie(self) -> list[WorkerContact]:
        return await roster.regie(self.conn)

    async def team_leads(self, team_id: str) -> list[WorkerContact]:
        return await roster.team_leads(self.conn, team_id)

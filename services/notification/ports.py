"""What notification's use cases need: a repository of the matches as notification
keeps them, their parties, alerts, tasks, deliveries, follow-up and the roster's answers
(who leads a team, who is the regie role); the unit of work (shared/unit_of_work.py);
and the key store's sealing. The inbox's read models (api.py) query the store directly.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.notification.domain import About, Alert, Overdue, TeamWorker
from shared.contracts import MatchContact, MatchKind, WorkerContact
from shared.unit_of_work import UnitOfWork as SharedUnitOfWork


@dataclass(frozen=True)
class KnownMatch:
    """A match as notification keeps it: where it is coordinated, and by whom."""

    match_id: uuid.UUID
    kind: MatchKind
    family: str | None
    wijk: str
    team_id: str | None
    coordinator_id: str | None


@dataclass(frozen=True)
class LateAlert:
    """An alert not acknowledged, of an open match."""

    alert_id: uuid.UUID
    match_id: uuid.UUID
    issued_at: datetime
    subjects: tuple[str, ...]
    team_id: str | None


@dataclass(frozen=True)
class QuietMatch:
    """An open match without contact recorded."""

    match_id: uuid.UUID
    raised_at: datetime


class NotificationRepository(Protocol):
    # --- serialising ------------------------------------------------------------------

    async def lock_match(self, match_id: uuid.UUID) -> None:
        """Every change to one match, whichever topic it comes from, one at a time."""

    async def lock_assignment(self, team_id: str) -> None:
        """Coordinator choices of one team, one at a time."""

    # --- matches and their parties ----------------------------------------------------

    async def match(self, match_id: uuid.UUID) -> KnownMatch | None: ...

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
        """False when the match is known already."""

    async def add_parties(
        self,
        match_id: uuid.UUID,
        contacts: Sequence[MatchContact],
        yours: Mapping[uuid.UUID, str] | None = None,
    ) -> None: ...

    async def parties(self, match_id: uuid.UUID) -> list[tuple[WorkerContact, str]]:
        """Each party's worker once, with their organisation."""

    async def drop_parties(
        self, match_id: uuid.UUID, registrations: Sequence[uuid.UUID]
    ) -> int: ...

    async def about(self, match_id: uuid.UUID) -> About: ...

    async def about_many(self, match_ids: Sequence[uuid.UUID]) -> list[str]: ...

    async def close_match(self, match_id: uuid.UUID, at: datetime) -> bool:
        """False when it was closed before."""

    async def reassign(
        self,
        match_id: uuid.UUID,
        *,
        wijk: str,
        team_id: str | None,
        coordinator_id: str | None,
    ) -> None: ...

    async def family_coordinator(self, family: str | None) -> str | None: ...

    async def member(self, user_id: str) -> TeamWorker | None: ...

    async def team_workers(self, team_id: str) -> list[TeamWorker]: ...

    async def orphaned(self) -> list[KnownMatch]:
        """Open matches of a team whose coordinator left or was never found."""

    # --- events that overtook their match, and forgetting ------------------------------

    async def park(
        self, event_id: uuid.UUID, match_id: uuid.UUID, kind: str, payload: bytes
    ) -> None: ...

    async def parked(self, match_id: uuid.UUID) -> list[tuple[str, bytes]]: ...

    async def forget_match_id(self, match_id: uuid.UUID) -> None: ...

    async def forgotten(self, match_id: uuid.UUID) -> bool: ...

    async def matches_of(self, subject: str) -> list[uuid.UUID]: ...

    async def forget_subject(
        self, subject: str, registrations: Sequence[uuid.UUID]
    ) -> tuple[int, int]: ...

    async def expired(self, closed_before: datetime) -> tuple[list[uuid.UUID], int]: ...

    async def forget_matches(self, match_ids: Sequence[uuid.UUID]) -> int: ...

    async def prune_digests(self, before: datetime) -> int: ...

    # --- telling people ---------------------------------------------------------------

    async def add_alert(
        self, alert: Alert, subjects: Sequence[str], organisation: str | None = None
    ) -> bool:
        """False when the same alert was stored before."""

    async def queue_for_digest(self, alert: Alert) -> None: ...

    async def add_delivery(self, alert_id: uuid.UUID, channel: str, target: str) -> None: ...

    async def add_task(
        self, *, match_id: uuid.UUID, registration_id: uuid.UUID, worker_id: str, addressee: str
    ) -> bool: ...

    async def tell_live(self, recipient_id: str) -> None: ...

    async def add_trend_cell(
        self, wijk: str, theme: str, window: str, children: int, trend: bool
    ) -> None: ...

    # --- follow-up --------------------------------------------------------------------

    async def unacknowledged(self, issued_before: datetime) -> list[LateAlert]: ...

    async def without_contact(self, raised_before: datetime) -> list[QuietMatch]: ...

    async def mark_alert_escalated(self, alert_id: uuid.UUID, at: datetime) -> None: ...

    async def mark_match_escalated(self, match_id: uuid.UUID, at: datetime) -> None: ...

    async def queue_overdue(self, items: Sequence[Overdue]) -> None: ...

    # --- the roster -------------------------------------------------------------------

    async def team_of(self, wijk: str) -> str | None: ...

    async def person(self, user_id: str) -> WorkerContact | None: ...

    async def regie(self) -> list[WorkerContact]: ...

    async def team_leads(self, team_id: str) -> list[WorkerContact]: ...


UnitOfWork = SharedUnitOfWork[NotificationRepository]


class Keys(Protocol):
    """The key store as notification uses it (shared/keystore.KeyStore)."""

    async def seal(self, subject: str, aad: bytes, plaintext: bytes, *, create: bool) -> str: ...

    async def open_sealed(self, subject: str, aad: bytes, sealed: str) -> bytes: ...

"""Notification's Kafka adapters: decode (ServiceRuntime.consume), run a use case
(usecases.py) in one PostgreSQL unit of work, ack; an event whose seal is broken is
dead-lettered after, unclaimed; and the periodic jobs (retention, follow-up)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from faststream.kafka import KafkaMessage

from services.notification.store.repository import PostgresRepository
from services.notification.usecases import Notifications, SealRefused
from shared.contracts import (
    CoordinationTransferred,
    EarlierInvolvementNoticed,
    MatchDissolved,
    MatchJoined,
    MatchLeft,
    MatchRaised,
    SubjectShredded,
    WijkThemeCounted,
    WijkTrendRaised,
)
from shared.policy import Policy
from shared.service import ServiceRuntime
from shared.unit_of_work import postgres_units
from shared.webhook import WebhookTarget

CONSUMER = "notification"


class Notifier:
    """The service's entry points: each message, and each periodic job."""

    def __init__(
        self,
        runtime: ServiceRuntime,
        policy: Policy,
        webhooks: Sequence[WebhookTarget] = (),
        *,
        email: bool = False,
    ) -> None:
        self.runtime = runtime
        self.policy = policy
        self.webhooks = list(webhooks)
        self.email = email
        self.unit_of_work = postgres_units(
            lambda: runtime.pool, PostgresRepository, runtime.audit, CONSUMER
        )

    @property
    def notifications(self) -> Notifications:
        # Built per use: the key store opens when the service starts (and again after a
        # restart in the same process).
        return Notifications(
            self.policy,
            self.runtime.keystore,
            self.runtime.topics,
            self.webhooks,
            email=self.email,
        )

    async def refused(self, message: KafkaMessage, refused: SealRefused | None) -> None:
        if refused is not None:
            await self.runtime.dead_letters.send(message, refused.code, refused.reason)

    async def on_raised(self, message: KafkaMessage, event: MatchRaised) -> None:
        async with self.unit_of_work() as uow:
            refused = await self.notifications.raised(uow, event, datetime.now(UTC))
        await self.refused(message, refused)

    async def on_joined(self, message: KafkaMessage, event: MatchJoined) -> None:
        async with self.unit_of_work() as uow:
            refused = await self.notifications.joined(uow, event, datetime.now(UTC))
        await self.refused(message, refused)

    async def on_transferred(self, message: KafkaMessage, event: CoordinationTransferred) -> None:
        async with self.unit_of_work() as uow:
            refused = await self.notifications.transferred(uow, event)
        await self.refused(message, refused)

    async def on_earlier(self, message: KafkaMessage, event: EarlierInvolvementNoticed) -> None:
        async with self.unit_of_work() as uow:
            refused = await self.notifications.earlier(uow, event)
        await self.refused(message, refused)

    async def on_left(self, event: MatchLeft) -> None:
        async with self.unit_of_work() as uow:
            await self.notifications.left(uow, event)

    async def on_dissolved(self, event: MatchDissolved) -> None:
        async with self.unit_of_work() as uow:
            await self.notifications.dissolved(uow, event)

    async def on_erased(self, erased: SubjectShredded) -> None:
        async with self.unit_of_work() as uow:
            await self.notifications.erased(uow, erased)

    async def on_cell(self, cell: WijkTrendRaised | WijkThemeCounted) -> None:
        async with self.unit_of_work() as uow:
            await self.notifications.cell(uow, cell)

    async def retention(self, now: datetime | None = None) -> int:
        async with self.unit_of_work() as uow:
            return await self.notifications.retention(uow, now or datetime.now(UTC))

    async def reassign_orphans(self) -> int:
        async with self.unit_of_work() as uow:
            return await self.notifications.reassign_orphans(uow)

    async def escalate(self, now: datetime | None = None) -> int:
        """New coordinators for orphaned matches first, then what became overdue."""
        await self.reassign_orphans()
        async with self.unit_of_work() as uow:
            return await self.notifications.escalate(uow, now or datetime.now(UTC))


def register(runtime: ServiceRuntime, notifier: Notifier) -> None:
    runtime.consume(
        runtime.topics.matches,
        handlers={MatchRaised: notifier.on_raised},
        default=MatchRaised,
    )
    runtime.consume(
        runtime.topics.match_lifecycle,
        handlers={
            MatchJoined: notifier.on_joined,
            MatchLeft: lambda _, gone: notifier.on_left(gone),
            MatchDissolved: lambda _, ended: notifier.on_dissolved(ended),
            CoordinationTransferred: notifier.on_transferred,
            SubjectShredded: lambda _, shredded: notifier.on_erased(shredded),
            EarlierInvolvementNoticed: notifier.on_earlier,
        },
    )
    # A group of its own: a burst of counts, or a count that keeps failing, never holds
    # up a match's alerts (the cells merge, so a first read from the start is harmless).
    runtime.consume(
        runtime.topics.trends,
        handlers={
            WijkThemeCounted: lambda _, cell: notifier.on_cell(cell),
            WijkTrendRaised: lambda _, cell: notifier.on_cell(cell),
        },
        default=WijkThemeCounted,
        group="trends",
    )

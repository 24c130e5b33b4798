"""Matching's Kafka adapters: decode (ServiceRuntime.consume), run a use case in one
PostgreSQL unit of work, ack. What the use cases refuse goes to the dead-letter topic
after the refusal is committed. The keys decided to go are shredded at once, also
within a batch (shared.batch): a signal behind the erasure in the same batch must find
the key gone; should the batch roll back, its erasure is applied again and shredding
twice changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from faststream.kafka import KafkaMessage
from prometheus_client import Gauge

from services.matching.store import PostgresRepository
from services.matching.usecases import Matching, Refusal
from shared.contracts import (
    RegistrationWithdrawn,
    SignalAccepted,
    SubjectErased,
    SubjectErasureApproved,
    SubjectShredded,
    WijkThemeCounted,
)
from shared.policy import Policy
from shared.service import ServiceRuntime
from shared.unit_of_work import postgres_units

SHREDS_WAITING = Gauge(
    "vroegsignaal_matching_shreds_waiting",
    "Data keys queued to be shredded when this instance's last pass began, until it ended",
)

CONSUMER = "matching"


class Handlers:
    """The service's entry points: each message, and each periodic job."""

    def __init__(self, runtime: ServiceRuntime, policy: Policy) -> None:
        self.runtime = runtime
        self.policy = policy
        self.unit_of_work = postgres_units(
            lambda: runtime.pool, PostgresRepository, runtime.audit, CONSUMER
        )

    @property
    def matching(self) -> Matching:
        # Built per use: the key store opens when the service starts (and again after a
        # restart in the same process).
        return Matching(self.policy, self.runtime.keystore, self.runtime.topics)

    async def on_accepted(self, signal: SignalAccepted, message: KafkaMessage | None) -> None:
        async with self.unit_of_work() as uow:
            outcome = await self.matching.register(uow, signal, datetime.now(UTC))
        if isinstance(outcome, Refusal):
            await self.dead_letter(message, outcome.code.value, outcome.reason)

    async def dead_letter(self, message: KafkaMessage | None, code: str, reason: str) -> None:
        if message is not None:
            await self.runtime.dead_letters.send(message, code, reason)

    async def on_partner_erasure(self, erased: SubjectErased) -> None:
        async with self.unit_of_work() as uow:
            await self.matching.erase_for_partner(uow, erased, datetime.now(UTC))
        await self.shred_pending()

    async def on_erased(self, erased: SubjectErasureApproved | SubjectShredded) -> None:
        async with self.unit_of_work() as uow:
            await self.matching.erase(uow, erased, datetime.now(UTC))
        await self.shred_pending()

    async def on_shredded(self, message: KafkaMessage, shredded: SubjectShredded) -> None:
        if await self.runtime.keystore.holds(shredded.subject):
            # A notice of a shredding that did not happen: erasing the subject as a
            # whole is the privacy officer's (erasures.approved), not a message's.
            await self.runtime.dead_letters.send(
                message,
                "not-shredded",
                "the subject's data key is still there: SubjectShredded tells of a "
                "shredding done ('vroegsignaal keystore shred'), it asks for none",
            )
            return
        await self.on_erased(shredded)

    async def on_withdrawn(self, withdrawn: RegistrationWithdrawn) -> None:
        async with self.unit_of_work() as uow:
            await self.matching.withdraw(uow, withdrawn, datetime.now(UTC))
        await self.shred_pending()

    async def on_count(self, counted: WijkThemeCounted) -> None:
        async with self.unit_of_work() as uow:
            await self.matching.count(uow, counted)

    async def shred_pending(self, limit: int = 500) -> None:
        """After the deciding transaction: each queued key shredded and taken off the
        queue in a transaction of its own, so one failure keeps no other on the queue."""
        async with self.unit_of_work() as uow:
            pending = await uow.repo.pending_shreds(limit)
        # What waits stays counted until a pass takes it all: a key that keeps failing
        # to be shredded holds this above zero, and the alert says so.
        SHREDS_WAITING.set(len(pending))
        for subject in pending:
            async with self.unit_of_work() as uow:
                await self.matching.shred(uow, subject)
        SHREDS_WAITING.set(0)

    async def retention(self) -> None:
        """Retention passes until nothing is due, each in its own transaction."""
        while await self.retention_pass(datetime.now(UTC)):
            pass

    async def retention_pass(self, now: datetime, limit: int = 500) -> int:
        await self.shred_pending()
        async with self.unit_of_work() as uow:
            due = await self.matching.end_due(uow, now, limit)
        await self.shred_pending()
        return due

    async def publish_counts(self) -> int:
        async with self.unit_of_work() as uow:
            return await self.matching.publish_counts(uow)


def register(runtime: ServiceRuntime, policy: Policy) -> Handlers:
    handlers = Handlers(runtime, policy)
    # A group of its own: the aggregates scale and lag apart from the matching.
    runtime.consume(
        runtime.topics.wijk_themes,
        handlers={WijkThemeCounted: lambda _, counted: handlers.on_count(counted)},
        default=WijkThemeCounted,
        group="trends",
    )
    runtime.consume(
        runtime.topics.erasures_approved,
        handlers={SubjectErasureApproved: lambda _, approved: handlers.on_erased(approved)},
        default=SubjectErasureApproved,
        group="erasures",
    )
    runtime.consume(
        runtime.topics.accepted,
        handlers={
            SignalAccepted: lambda message, signal: handlers.on_accepted(signal, message),
            SubjectErased: lambda _, erased: handlers.on_partner_erasure(erased),
            SubjectShredded: handlers.on_shredded,
            RegistrationWithdrawn: lambda _, withdrawn: handlers.on_withdrawn(withdrawn),
        },
        default=SignalAccepted,
    )
    return handlers

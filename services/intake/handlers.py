"""Intake's Kafka adapters: verify the partner's signature, open the seal, decode; then
one use case (usecases.py) in one PostgreSQL unit of work; ack. What is refused is
audited and dead-lettered after the refusal is committed."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from faststream.kafka import KafkaMessage
from prometheus_client import Counter

from services.intake.domain import (
    Partner,
    PartnerRegistry,
    Rejection,
    Rekeyer,
    check_own_topic,
    open_partner_message,
)
from services.intake.store import PostgresRepository
from services.intake.usecases import Intake
from shared.contracts import (
    AuditAction,
    Contract,
    ErasureRequested,
    SignalRegistered,
    SignalWithdrawn,
    SubjectErased,
    SubjectReportRequest,
    SubjectReportRequested,
    scoped_id,
)
from shared.envelope import SEALED_TO_HEADER, IntakeKeyring
from shared.outbox import EVENT_TYPE_HEADER
from shared.policy import Policy
from shared.service import ServiceRuntime
from shared.telemetry import trace_of_our_own
from shared.unit_of_work import postgres_units

CONSUMER = "intake"

SIGNALS = Counter("vroegsignaal_intake_signals_total", "Partner signals by outcome", ["outcome"])


def _header(message: KafkaMessage, name: str) -> bytes | None:
    record = message.raw_message
    assert not isinstance(record, tuple)
    for key, value in record.headers or ():
        if key == name:
            return bytes(value)
    return None


class Handlers:
    """Intake's entry points: each partner message, and the periodic jobs."""

    def __init__(self, runtime: ServiceRuntime, registry: PartnerRegistry, rekey: Rekeyer) -> None:
        self.runtime = runtime
        self.registry = registry
        self.rekey = rekey
        self.unit_of_work = postgres_units(
            lambda: runtime.pool, PostgresRepository, runtime.audit, CONSUMER
        )
        self.max_age = timedelta(days=runtime.settings.max_event_age_days)

    @property
    def intake(self) -> Intake:
        # Built per use: the key store opens when the service starts (and again after a
        # restart in the same process).
        return Intake(
            self.registry,
            self.rekey,
            self.runtime.keystore,
            self.runtime.topics,
            max_age=self.max_age,
        )

    async def refuse(
        self,
        message: KafkaMessage,
        rejection: Rejection,
        plain: bytes | None,
        *,
        audited: bool = False,
    ) -> None:
        """Audit (unless the use case did) and dead-letter a refused partner message
        (`plain`: what it held once opened, which its dead letter keeps sealed instead
        of intake's ciphertext)."""
        if not audited:
            async with self.unit_of_work() as uow:
                await self.intake.audit_refusal(uow, rejection, None)
        SIGNALS.labels("rejected").inc()
        await self.runtime.dead_letters.send(message, rejection.code, rejection.reason, value=plain)

    async def on_signal(self, message: KafkaMessage, plain: bytes, partner: Partner) -> None:
        signal = await self.runtime.dead_letters.decode(SignalRegistered, message, plain)
        if signal is None:
            SIGNALS.labels("dead-lettered").inc()
            return
        async with self.unit_of_work() as uow:
            outcome = await self.intake.admit(uow, partner, signal, datetime.now(UTC))
        if isinstance(outcome, Rejection):
            await self.refuse(message, outcome, plain, audited=True)
        else:
            SIGNALS.labels(outcome.value).inc()

    async def on_withdrawal(self, message: KafkaMessage, plain: bytes, partner_id: str) -> None:
        withdrawn = await self.runtime.dead_letters.decode(SignalWithdrawn, message, plain)
        if withdrawn is None:
            return
        try:
            check_own_topic(withdrawn.partner_id, partner_id, withdrawal=True)
        except Rejection as rejection:
            await self.refuse(message, rejection, plain)
            return
        async with self.unit_of_work() as uow:
            refused = await self.intake.withdraw(uow, partner_id, withdrawn)
        if refused is not None:
            await self.refuse(message, refused, plain, audited=True)

    async def pass_on(
        self,
        message: KafkaMessage,
        plain: bytes,
        partner_id: str,
        request: ErasureRequested | SubjectReportRequested | None,
        forward: Callable[[uuid.UUID, str], tuple[str, Contract]],
        action: AuditAction,
        what: str,
    ) -> None:
        """A data subject's request a partner passes on: re-keyed, forwarded once."""
        if request is None:
            return
        try:
            check_own_topic(request.partner_id, partner_id, withdrawal=False)
        except Rejection as rejection:
            await self.refuse(message, rejection, plain)
            return
        subject = self.rekey(request.subject)
        # A request's id is random at the partner: scoping it by partner reveals nothing,
        # and lets the partner quote it to the privacy officer.
        event_id = scoped_id(partner_id, request.event_id)
        async with self.unit_of_work() as uow:
            await self.intake.pass_on(
                uow, partner_id, event_id, subject, forward(event_id, subject), action, what
            )

    async def on_report_request(self, message: KafkaMessage, plain: bytes, partner_id: str) -> None:
        topics = self.runtime.topics
        await self.pass_on(
            message,
            plain,
            partner_id,
            await self.runtime.dead_letters.decode(SubjectReportRequested, message, plain),
            lambda event_id, subject: (
                topics.audit_requests,
                SubjectReportRequest(
                    event_id=event_id, request_id=event_id, subject=subject, partner_id=partner_id
                ),
            ),
            AuditAction.SEARCH,
            "a data subject's access request",
        )

    async def on_erasure(self, message: KafkaMessage, plain: bytes, partner_id: str) -> None:
        topics = self.runtime.topics
        await self.pass_on(
            message,
            plain,
            partner_id,
            await self.runtime.dead_letters.decode(ErasureRequested, message, plain),
            lambda event_id, subject: (
                topics.accepted,
                SubjectErased(
                    event_id=event_id, request_id=event_id, subject=subject, partner_id=partner_id
                ),
            ),
            AuditAction.DELETE,
            "a data subject's erasure request (of this partner's registrations)",
        )

    async def publish_counts(self, policy: Policy, batch: int = 5000) -> int:
        """Release passes until nothing more is due; returns the cells published."""
        published = 0
        while True:
            held_before = datetime.now(UTC) - timedelta(
                seconds=self.runtime.settings.theme_counts_max_hold_seconds
            )
            async with self.unit_of_work() as uow:
                done = await self.intake.release_counts(
                    uow, policy.aggregates.k, held_before, policy.version, batch
                )
            published += done.published
            if done.taken < batch and done.published < batch:
                return published

    async def destroy_window_keys(self) -> None:
        older = datetime.now(UTC) - timedelta(days=self.runtime.settings.trend_key_days)
        await self.intake.destroy_window_keys(self.unit_of_work, older)


def register(
    runtime: ServiceRuntime, registry: PartnerRegistry, rekey: Rekeyer, keyring: IntakeKeyring
) -> Handlers:
    """Intake subscribes to the partner topics itself: a partner's bytes are verified
    (signature, seal) before anything is decoded."""
    handlers = Handlers(runtime, registry, rekey)
    topics = [runtime.topics.partner(p.partner_id) for p in registry]
    settings = runtime.settings

    async def on_partner_message(message: KafkaMessage) -> None:
        # The partner's trace ends here: what intake does and passes on is in its own.
        with trace_of_our_own("intake: partner message"):
            await on_partner_signal(message)

    async def on_partner_signal(message: KafkaMessage) -> None:
        record = message.raw_message
        assert not isinstance(record, tuple)
        partner_id = runtime.topics.partner_id_of(record.topic)
        partner = registry.get(partner_id or "")
        assert partner is not None, "intake subscribes only to registered partners' topics"
        try:
            # Only intake can read what a partner sends: the seal is opened after the
            # signature (which covers the sealed bytes as sent) and before anything parses.
            plain = open_partner_message(
                partner,
                key_id=_header(message, "vs-key-id"),
                signature=_header(message, "vs-signature"),
                sealed_to=_header(message, SEALED_TO_HEADER),
                value=record.value or b"",
                keyring=keyring,
                max_bytes=settings.max_message_bytes,
            )
        except Rejection as rejection:
            if rejection.code == "oversized":
                await runtime.dead_letters.send(message, rejection.code, rejection.reason)
                SIGNALS.labels("dead-lettered").inc()
            else:
                await handlers.refuse(message, rejection, None)
            return
        event_type = _header(message, EVENT_TYPE_HEADER) or b""
        if event_type == b"SignalWithdrawn":
            await handlers.on_withdrawal(message, plain, partner.partner_id)
        elif event_type == b"ErasureRequested":
            await handlers.on_erasure(message, plain, partner.partner_id)
        elif event_type == b"SubjectReportRequested":
            await handlers.on_report_request(message, plain, partner.partner_id)
        else:
            await handlers.on_signal(message, plain, partner)

    runtime.consume_raw(
        *topics,
        handle=on_partner_message,
        max_partition_fetch_bytes=max(settings.max_message_bytes * 4, 1024 * 1024),
    )
    return handlers

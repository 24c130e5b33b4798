"""Intake subscribers: decode -> screen -> record + outbox (accepted, audit) -> ack."""

from __future__ import annotations

from datetime import UTC, datetime

from faststream import AckPolicy
from faststream.kafka import KafkaMessage
from prometheus_client import Counter

from services.intake import store
from services.intake.domain import PartnerRegistry, Rejection, screen
from shared.contracts import AuditAction, AuditOutcome, SignalRegistered
from shared.db import claim_message
from shared.kafka import source_topic
from shared.outbox import enqueue
from shared.service import ServiceRuntime

CONSUMER = "intake"

SIGNALS = Counter("vroegsignaal_intake_signals_total", "Partner signals by outcome", ["outcome"])


def register(runtime: ServiceRuntime, registry: PartnerRegistry) -> None:
    topics = [runtime.topics.partner(p.partner_id) for p in registry]
    dead_letters = runtime.dead_letters
    max_bytes = runtime.settings.max_message_bytes

    @runtime.broker.subscriber(
        *topics,
        group_id=runtime.group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=max(max_bytes * 4, 1024 * 1024),
    )
    async def on_partner_signal(message: KafkaMessage) -> None:
        signal = await dead_letters.decode(SignalRegistered, message)
        if signal is None:
            SIGNALS.labels("dead-lettered").inc()
            return
        try:
            accepted = screen(
                signal,
                topic_partner_id=runtime.topics.partner_id_of(source_topic(message)),
                registry=registry,
                now=datetime.now(UTC),
            )
        except Rejection as rejection:
            async with runtime.pool.acquire() as conn, conn.transaction():
                if await claim_message(conn, CONSUMER, signal.event_id):
                    await store.record_rejected(
                        conn, signal.event_id, signal.partner_id, rejection.code
                    )
                    await runtime.audit.record(
                        conn,
                        action=AuditAction.REJECT,
                        outcome=AuditOutcome.DENIED,
                        object_type="signal",
                        object_id=str(signal.event_id),
                        purpose=f"intake: reject partner signal ({rejection.code})",
                    )
            SIGNALS.labels("rejected").inc()
            await dead_letters.send(message, rejection.code, rejection.reason)
            return
        async with runtime.pool.acquire() as conn, conn.transaction():
            if not await claim_message(conn, CONSUMER, signal.event_id):
                SIGNALS.labels("duplicate").inc()
                return
            await store.record_accepted(conn, accepted)
            await enqueue(conn, runtime.topics.accepted, accepted)
            await runtime.audit.record(
                conn,
                action=AuditAction.CREATE,
                object_type="signal",
                object_id=str(signal.event_id),
                subjects=[accepted.subject],
                purpose="intake: admit partner signal into the matching domain",
            )
        SIGNALS.labels("accepted").inc()

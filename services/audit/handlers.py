"""Audit subscriber: decode -> append (with the processed-message row) -> ack."""

from __future__ import annotations

from datetime import UTC, datetime

from faststream import AckPolicy
from faststream.kafka import KafkaMessage
from prometheus_client import Counter

from services.audit import store
from services.audit.domain import entry_from
from shared.contracts import AuditEvent
from shared.db import claim_message
from shared.service import ServiceRuntime

CONSUMER = "audit"

ENTRIES = Counter("vroegsignaal_audit_entries_total", "Audit entries appended", ["source"])


def register(runtime: ServiceRuntime) -> None:
    dead_letters = runtime.dead_letters

    @runtime.broker.subscriber(
        runtime.topics.audit,
        group_id=runtime.group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
    )
    async def on_audit_event(message: KafkaMessage) -> None:
        event = await dead_letters.decode(AuditEvent, message)
        if event is None:
            return
        async with runtime.pool.acquire() as conn, conn.transaction():
            if not await claim_message(conn, CONSUMER, event.event_id):
                return
            await store.append(conn, entry_from(event, datetime.now(UTC)))
        ENTRIES.labels(event.source_system).inc()

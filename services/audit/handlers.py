"""Audit's Kafka adapters and jobs: decode (ServiceRuntime.consume), run a use case
(usecases.py) in one PostgreSQL unit of work, ack; the jobs that sign tree heads and
prune past retention likewise. An entry refused for its source is dead-lettered after
the unit of work."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from faststream.kafka import KafkaMessage
from prometheus_client import Counter, Gauge

from services.audit import store, usecases
from services.audit.domain import Refusal, SignedHead
from shared.audit import AuditTrail
from shared.config import NamedKey, load_yaml_model
from shared.contracts import AuditEvent, ErasureReviewRequested, SubjectReportRequest
from shared.service import ServiceRuntime

PRUNED = Counter("vroegsignaal_audit_pruned_total", "Audit entries pruned past retention")
ENTRIES = Counter("vroegsignaal_audit_entries_total", "Audit entries appended", ["source"])
FORGED = Counter(
    "vroegsignaal_audit_source_mismatch_total",
    "Audit events whose claimed source is not the service whose topic carried them",
    ["topic_of"],
)
TREE_SIZE = Gauge("vroegsignaal_audit_tree_size", "Leaves in the audit log's tree at the last head")


class AuditKeyError(ValueError):
    """The audit signing key is missing or broken; the message says how to fix it."""


def load_signing_key(path: Path | None) -> tuple[str, Ed25519PrivateKey]:
    if path is None:
        raise AuditKeyError(
            "VS_AUDIT_SIGNING_KEY_FILE is not set: the audit service signs its tree heads "
            "('vroegsignaal secrets init' makes a key for a local stack)"
        )
    doc = load_yaml_model(
        NamedKey,
        path,
        error=AuditKeyError,
        what="the audit signing key (VS_AUDIT_SIGNING_KEY_FILE)",
    )
    return doc.key_id, Ed25519PrivateKey.from_private_bytes(bytes.fromhex(doc.private_key))


def register(runtime: ServiceRuntime) -> None:
    units = store.units(lambda: runtime.pool, runtime.audit)

    async def on_audit_event(message: KafkaMessage, event: AuditEvent) -> None:
        record = message.raw_message
        assert not isinstance(record, tuple)
        written_by = runtime.topics.audit_source_of(record.topic)
        async with units() as uow:
            logged = await usecases.append(uow, event, written_by, datetime.now(UTC))
        if isinstance(logged, Refusal):
            FORGED.labels(written_by or "unknown").inc()
            await runtime.dead_letters.send(message, logged.code, logged.reason)
        elif logged is usecases.Logged.APPENDED:
            ENTRIES.labels(event.source_system).inc()

    async def on_report_request(_: KafkaMessage, request: SubjectReportRequest) -> None:
        async with units() as uow:
            await usecases.report(uow, request, datetime.now(UTC))

    async def on_review_requested(_: KafkaMessage, review: ErasureReviewRequested) -> None:
        async with units() as uow:
            await usecases.review_requested(uow, review)

    runtime.consume(
        *runtime.topics.audits, handlers={AuditEvent: on_audit_event}, default=AuditEvent
    )
    runtime.consume(
        runtime.topics.audit_requests,
        handlers={
            SubjectReportRequest: on_report_request,
            ErasureReviewRequested: on_review_requested,
        },
        default=SubjectReportRequest,
        group="requests",
    )


async def sign_head(
    runtime: ServiceRuntime, key_id: str, key: Ed25519PrivateKey
) -> SignedHead | None:
    """Sign and publish a head when the tree grew since the last one."""
    async with store.units(lambda: runtime.pool, runtime.audit)() as uow:
        head = await usecases.sign_head(uow, runtime.topics, key_id, key, datetime.now(UTC))
    if head is not None:
        TREE_SIZE.set(head.size)
    return head


async def prune(
    pool: asyncpg.Pool,
    audit: AuditTrail,
    key_id: str,
    key: Ed25519PrivateKey,
    retention_years: int,
    now: datetime | None = None,
    batch: int = 10_000,
) -> int:
    """One step of retention (usecases.prune) in its own transaction; how many entries
    went."""
    async with store.units(lambda: pool, audit)() as uow:
        removed = await usecases.prune(
            uow, key_id, key, retention_years, now or datetime.now(UTC), batch
        )
    PRUNED.inc(removed)
    return removed

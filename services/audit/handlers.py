"""Audit: decode -> append as the next Merkle leaf (with the processed-message row) -> ack;
and a job that signs and publishes tree heads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from faststream.kafka import KafkaMessage
from prometheus_client import Counter, Gauge

from services.audit import erasures, store
from services.audit.domain import SignedHead, SignedPruning, entry_from
from services.audit.report import subject_report
from shared.audit import AuditTrail
from shared.config import NamedKey, load_yaml_model
from shared.contracts import (
    AuditAction,
    AuditEvent,
    ErasureReviewRequested,
    SubjectReportRequest,
    TreeHeadSigned,
)
from shared.db import claim_message
from shared.outbox import enqueue
from shared.service import ServiceRuntime

CONSUMER = "audit"

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
    dead_letters = runtime.dead_letters

    async def on_audit_event(message: KafkaMessage, event: AuditEvent) -> None:
        record = message.raw_message
        assert not isinstance(record, tuple)
        written_by = runtime.topics.audit_source_of(record.topic)
        if event.source_system != written_by:
            # Only `written_by` may write this topic (its Kafka principal's ACL): an entry
            # claiming another source is forged or misrouted, and is not logged as true.
            FORGED.labels(written_by or "unknown").inc()
            await dead_letters.send(
                message,
                "audit-source-mismatch",
                f"an entry from {event.source_system!r} came on the audit topic of "
                f"{written_by!r}: each service writes only its own audit topic",
            )
            return
        async with runtime.pool.acquire() as conn, conn.transaction():
            if not await claim_message(conn, CONSUMER, event.event_id):
                return
            await store.append(conn, entry_from(event, datetime.now(UTC)))
        ENTRIES.labels(event.source_system).inc()

    runtime.consume(
        *runtime.topics.audits, handlers={AuditEvent: on_audit_event}, default=AuditEvent
    )
    runtime.consume(
        runtime.topics.audit_requests,
        handlers={
            SubjectReportRequest: lambda _, request: on_report_request(runtime, request),
            ErasureReviewRequested: lambda _, review: on_review_requested(runtime, review),
        },
        default=SubjectReportRequest,
        group="requests",
    )


async def on_review_requested(runtime: ServiceRuntime, review: ErasureReviewRequested) -> None:
    async with runtime.pool.acquire() as conn, conn.transaction():
        if await claim_message(conn, CONSUMER, review.event_id):
            await erasures.receive(conn, runtime.audit, review)


async def on_report_request(runtime: ServiceRuntime, request: SubjectReportRequest) -> None:
    """Build the data subject's report from the log and keep it for the privacy officer."""
    async with runtime.pool.acquire() as conn, conn.transaction():
        if not await claim_message(conn, CONSUMER, request.event_id):
            return
        events = [
            AuditEvent.model_validate_json(raw)
            for raw in await store.events_about(conn, request.subject)
        ]
        report = subject_report(request.request_id, events, datetime.now(UTC))
        await store.save_report(conn, request.request_id, json.dumps(report))
        await runtime.audit.record(
            conn,
            action=AuditAction.EXPORT,
            object_type="subject-report",
            object_id=str(request.request_id),
            subjects=[request.subject],
            purpose="audit: a data subject's access report, from the log",
        )


async def sign_head(
    runtime: ServiceRuntime, key_id: str, key: Ed25519PrivateKey
) -> SignedHead | None:
    """Sign and publish a head when the tree grew since the last one."""
    async with runtime.pool.acquire() as conn, conn.transaction():
        await store.lock_tree(conn)
        size = await store.size(conn)
        last = await store.latest_head(conn)
        if last is not None and last.size == size:
            return None
        head = SignedHead.sign(key, key_id, size, await store.root(conn, size), datetime.now(UTC))
        await store.add_head(conn, head)
        await enqueue(
            conn,
            runtime.topics.tree_heads,
            TreeHeadSigned(
                size=head.size,
                root=head.root.hex(),
                signed_at=head.signed_at,
                key_id=head.key_id,
                signature=head.signature.hex(),
            ),
        )
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
    """Remove the entries past the policy's retention by a signed pruning that keeps the
    tree verifiable, and log the pruning itself. Returns how many entries went."""
    now = now or datetime.now(UTC)
    try:
        cutoff = now.replace(year=now.year - retention_years)
    except ValueError:  # 29 February
        cutoff = now.replace(year=now.year - retention_years, day=28)
    async with pool.acquire() as conn, conn.transaction():
        await store.lock_tree(conn)
        done = await store.pruned_upto(conn)
        # Never the last entry (the tree keeps its size), and in bounded steps, so the
        # tree lock is never held long: the next run takes the next step.
        upto = min(
            await store.prunable_upto(conn, cutoff), await store.size(conn) - 1, done + batch
        )
        if upto <= done:
            return 0
        pruning = SignedPruning.sign(key, key_id, upto, await store.root(conn, upto), cutoff, now)
        removed = await store.prune(conn, pruning)
        await audit.record(
            conn,
            action=AuditAction.DELETE,
            object_type="audit-log",
            object_id=f"leaves 0-{upto - 1}",
            purpose=(
                f"audit: {removed} entries recorded before {pruning.cutoff.date()} pruned "
                f"({retention_years}-year retention); the tree and a signed record remain"
            ),
        )
    PRUNED.inc(removed)
    return removed

"""Audit's use cases: log an event as the next leaf of the tree, answer a data subject's
access request from the log, list an erasure for the privacy officer, sign a tree head,
prune the entries past retention. Each takes a unit of work (repository, outbox and
audit trail in one transaction) and the time; the rules are domain.py's, the erasure
decisions erasures.py's. The service runs them on PostgreSQL (handlers.py), the tests
in memory."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit import erasures
from services.audit.domain import (
    Refusal,
    SignedHead,
    SignedPruning,
    check_source,
    entry_from,
    retention_cutoff,
)
from services.audit.ports import UnitOfWork
from services.audit.report import subject_report
from shared.contracts import (
    AuditAction,
    AuditEvent,
    ErasureReviewRequested,
    SubjectReportRequest,
    Topics,
    TreeHeadSigned,
)


class Logged(StrEnum):
    """What became of an audit event that came on its source's own topic."""

    APPENDED = "appended"
    ALREADY = "already"  # logged before: a redelivery


async def append(
    uow: UnitOfWork, event: AuditEvent, written_by: str | None, now: datetime
) -> Logged | Refusal:
    """Log an event once, as the next leaf. One whose claimed source is not the service
    whose topic carried it (`written_by`) is refused, not logged and not claimed: the
    caller dead-letters it once the unit of work is over."""
    refused = check_source(event, written_by)
    if refused is not None:
        return refused
    if not await uow.claim(event.event_id):
        return Logged.ALREADY
    await uow.repo.append(entry_from(event, now))
    return Logged.APPENDED


async def report(uow: UnitOfWork, request: SubjectReportRequest, now: datetime) -> bool:
    """Build the data subject's report from the log and keep it for the privacy officer,
    once per request. False when the request was answered before."""
    if not await uow.claim(request.event_id):
        return False
    events = await uow.repo.events_about(request.subject)
    await uow.repo.save_report(request.request_id, subject_report(request.request_id, events, now))
    await uow.record(
        action=AuditAction.EXPORT,
        object_type="subject-report",
        object_id=str(request.request_id),
        subjects=[request.subject],
        purpose="audit: a data subject's access report, from the log",
    )
    return True


async def review_requested(uow: UnitOfWork, review: ErasureReviewRequested) -> bool:
    """List matching's request to erase a subject as a whole for the privacy officer,
    once. False when it was received before or repeats one still pending."""
    if not await uow.claim(review.event_id):
        return False
    return await erasures.receive(uow, review)


async def sign_head(
    uow: UnitOfWork, topics: Topics, key_id: str, key: Ed25519PrivateKey, now: datetime
) -> SignedHead | None:
    """Sign a head when the tree grew since the last one, and publish it (through the
    outbox, so copies exist outside this database). None when it did not grow."""
    await uow.repo.lock_tree()
    size = await uow.repo.size()
    last = await uow.repo.latest_head()
    if last is not None and last.size == size:
        return None
    # `now` was read before the tree's lock: another replica may have signed a larger head
    # meanwhile, a moment later. Heads never go back in time as the tree grows.
    signed_at = max(now, last.signed_at) if last is not None else now
    head = SignedHead.sign(key, key_id, size, await uow.repo.root(size), signed_at)
    await uow.repo.add_head(head)
    await uow.publish(
        topics.tree_heads,
        TreeHeadSigned(
            size=head.size,
            root=head.root.hex(),
            signed_at=head.signed_at,
            key_id=head.key_id,
            signature=head.signature.hex(),
        ),
    )
    return head


async def prune(
    uow: UnitOfWork,
    key_id: str,
    key: Ed25519PrivateKey,
    retention_years: int,
    now: datetime,
    batch: int,
) -> int:
    """Remove the entries past the policy's retention by a signed pruning that keeps the
    tree verifiable, and log the pruning itself. Returns how many entries went."""
    cutoff = retention_cutoff(now, retention_years)
    await uow.repo.lock_tree()
    done = await uow.repo.pruned_upto()
    # Never the last entry (the tree keeps its size), and in bounded steps, so the
    # tree lock is never held long: the next run takes the next step.
    upto = min(await uow.repo.prunable_upto(cutoff), await uow.repo.size() - 1, done + batch)
    if upto <= done:
        return 0
    pruning = SignedPruning.sign(key, key_id, upto, await uow.repo.root(upto), cutoff, now)
    removed = await uow.repo.prune(pruning)
    await uow.record(
        action=AuditAction.DELETE,
        object_type="audit-log",
        object_id=f"leaves 0-{upto - 1}",
        purpose=(
            f"audit: {removed} entries recorded before {pruning.cutoff.date()} pruned "
            f"({retention_years}-year retention); the tree and a signed record remain"
        ),
    )
    return removed

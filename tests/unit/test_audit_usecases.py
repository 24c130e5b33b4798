"""Audit's use cases, called directly on the in-memory unit of work: an event is logged
once and only from its own source's topic, a head is signed only when the tree grew, a
pruning never empties the log and is logged itself, a data subject's request is
answered once, and an erasure is listed once and decided once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit import erasures, merkle, usecases
from services.audit.domain import Refusal
from services.audit.memory import InMemoryRepository
from services.audit.usecases import Logged
from shared.contracts import (
    AuditAction,
    AuditActor,
    AuditEvent,
    AuditOutcome,
    SubjectErasureApproved,
    SubjectReportRequest,
    Topics,
    TreeHeadSigned,
)
from shared.unit_of_work import InMemoryUnitOfWork, Recorded
from tests.factories import audit_event, erasure_review, pseudonym

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()
TOPICS = Topics()
OFFICER = AuditActor(actor_id="fg-mira", role="privacy_officer")

Unit = InMemoryUnitOfWork[InMemoryRepository]


def event(n: int, *subjects: str, source: str = "notification") -> AuditEvent:
    return audit_event(n, *subjects, source=source)


@pytest.fixture
def uow() -> Unit:
    return InMemoryUnitOfWork(InMemoryRepository())


async def logged(uow: Unit, *events: AuditEvent, at: datetime = NOW) -> None:
    for e in events:
        assert await usecases.append(uow, e, e.source_system, at) is Logged.APPENDED


async def test_an_event_is_logged_once_as_the_next_leaf(uow: Unit) -> None:
    first, second = event(0), event(1)
    await logged(uow, first, second)
    assert await usecases.append(uow, first, "notification", NOW) is Logged.ALREADY
    assert {i: e.event for i, e in uow.repo.entries.items()} == {0: first, 1: second}
    assert uow.repo.entries[1].recorded_at == NOW
    assert await uow.repo.root(2) == merkle.root_of(
        [merkle.leaf_hash(e.to_bytes()) for e in (first, second)]
    )
    assert uow.published == [] and uow.recorded == []  # an entry is not itself logged


@pytest.mark.parametrize("written_by", ["intake", None])
async def test_an_entry_claiming_another_source_is_refused_and_not_logged(
    uow: Unit, written_by: str | None
) -> None:
    forged = event(0, source="matching")
    refused = await usecases.append(uow, forged, written_by, NOW)
    assert isinstance(refused, Refusal)
    assert refused.code == "audit-source-mismatch"
    assert "'matching'" in refused.reason and repr(written_by) in refused.reason
    # Not logged and not claimed: the same event on its own topic is logged.
    assert uow.repo.entries == {} and uow.claimed == set()
    assert await usecases.append(uow, forged, "matching", NOW) is Logged.APPENDED


async def test_a_head_is_signed_and_published_only_when_the_tree_grew(uow: Unit) -> None:
    await logged(uow, *(event(n) for n in range(3)))
    head = await usecases.sign_head(uow, TOPICS, "audit-1", KEY, NOW)
    assert head is not None and (head.size, head.key_id) == (3, "audit-1")
    assert head.root == await uow.repo.root(3) and head.verifies(KEY.public_key())
    assert uow.published == [
        (
            TOPICS.tree_heads,
            TreeHeadSigned(
                event_id=uow.published[0][1].event_id,
                size=3,
                root=head.root.hex(),
                signed_at=head.signed_at,
                key_id="audit-1",
                signature=head.signature.hex(),
            ),
        )
    ]
    assert await usecases.sign_head(uow, TOPICS, "audit-1", KEY, NOW + timedelta(1)) is None
    assert len(uow.published) == 1 and uow.repo.heads == [head]

    await logged(uow, event(3))
    later = await usecases.sign_head(uow, TOPICS, "audit-1", KEY, NOW + timedelta(2))
    assert later is not None and later.size == 4
    assert await uow.repo.latest_head() == later
    assert [e.size for _, e in uow.published if isinstance(e, TreeHeadSigned)] == [3, 4]

    # A clock read before another replica signed (a moment earlier than its head): the
    # larger head is not dated before the smaller one.
    await logged(uow, event(4))
    late_clock = await usecases.sign_head(uow, TOPICS, "audit-1", KEY, NOW)
    assert late_clock is not None and late_clock.size == 5
    assert late_clock.signed_at == later.signed_at and late_clock.verifies(KEY.public_key())


async def test_a_pruning_never_removes_the_last_entry_and_is_logged(uow: Unit) -> None:
    await logged(uow, *(event(n) for n in range(5)), at=NOW - timedelta(days=6 * 366))
    roots = [await uow.repo.root(size) for size in range(6)]

    async def prune(batch: int) -> int:
        return await usecases.prune(uow, "audit-1", KEY, 5, NOW, batch)

    assert [await prune(batch=3), await prune(batch=3), await prune(batch=3)] == [3, 1, 0]
    assert list(uow.repo.entries) == [4]  # every entry is past retention: all but the last
    assert [await uow.repo.root(size) for size in range(6)] == roots
    first, second = uow.repo.prunings
    assert (first.upto, second.upto) == (3, 4)
    assert first.prefix_root == roots[3] and first.verifies(KEY.public_key())
    assert first.cutoff == NOW.replace(year=NOW.year - 5)
    assert uow.recorded == [
        Recorded(
            action=AuditAction.DELETE,
            object_type="audit-log",
            purpose=(
                f"audit: {removed} entries recorded before {first.cutoff.date()} pruned "
                "(5-year retention); the tree and a signed record remain"
            ),
            object_id=leaves,
            subjects=[],
            outcome=AuditOutcome.SUCCESS,
        )
        for removed, leaves in ((3, "leaves 0-2"), (1, "leaves 0-3"))
    ]
    assert uow.published == []


async def test_entries_inside_the_retention_stay(uow: Unit) -> None:
    await logged(uow, event(0), at=NOW - timedelta(days=6 * 366))
    await logged(uow, event(1), event(2), at=NOW - timedelta(days=30))
    assert await usecases.prune(uow, "audit-1", KEY, 5, NOW, 10_000) == 1
    assert await usecases.prune(uow, "audit-1", KEY, 5, NOW, 10_000) == 0
    assert sorted(uow.repo.entries) == [1, 2] and len(uow.recorded) == 1


async def test_retention_from_29_february_counts_from_28_february(uow: Unit) -> None:
    leap = datetime(2028, 2, 29, 12, 0, tzinfo=UTC)
    await logged(uow, event(0), event(1), at=datetime(2023, 2, 27, tzinfo=UTC))
    assert await usecases.prune(uow, "audit-1", KEY, 5, leap, 10_000) == 1
    (pruning,) = uow.repo.prunings
    assert pruning.cutoff == datetime(2023, 2, 28, 12, 0, tzinfo=UTC)


async def test_a_data_subjects_report_is_made_once_from_the_log(uow: Unit) -> None:
    child = pseudonym()
    await logged(uow, event(0, child), event(1, pseudonym()), event(2, child))
    request = SubjectReportRequest(
        request_id=uuid.uuid4(), subject=child, partner_id="school-de-regenboog"
    )
    assert await usecases.report(uow, request, NOW)
    assert not await usecases.report(uow, request, NOW)  # redelivered
    (report,) = uow.repo.reports.values()
    assert report["request_id"] == str(request.request_id)
    (made,) = uow.recorded
    assert (made.action, made.object_type, made.object_id, made.subjects) == (
        AuditAction.EXPORT,
        "subject-report",
        str(request.request_id),
        [child],
    )


async def test_an_erasure_is_listed_once_and_decided_once(uow: Unit) -> None:
    child = pseudonym()
    review = erasure_review(child)
    assert await usecases.review_requested(uow, review)
    assert not await usecases.review_requested(uow, review)  # redelivered
    # Asked again by the same partner while pending: not listed, and logged as such.
    assert not await usecases.review_requested(uow, erasure_review(child))
    assert [r.outcome for r in uow.recorded] == [AuditOutcome.SUCCESS, AuditOutcome.FAILED]
    assert await uow.repo.pending_of(child, review.partner_id)

    decided = await erasures.decide(
        uow, TOPICS, review.request_id, approve=True, who=OFFICER, reason=""
    )
    assert (decided.approved, decided.decided_by) == (True, "fg-mira")
    ((topic, approval),) = uow.published
    assert topic == TOPICS.erasures_approved and isinstance(approval, SubjectErasureApproved)
    assert (approval.subject, approval.request_id) == (child, review.request_id)
    with pytest.raises(erasures.DecisionError, match="already approved by fg-mira"):
        await erasures.decide(
            uow, TOPICS, review.request_id, approve=False, who=OFFICER, reason="toch niet"
        )
    assert len(uow.published) == 1

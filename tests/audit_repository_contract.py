"""One contract for audit's repository (services/audit/ports.AuditRepository), run
against the in-memory implementation (tests/unit/test_audit_repository.py) and the
PostgreSQL one (tests/integration/test_audit_repository.py): the same entries make the
same tree, whichever keeps it. A subclass provides the `repo` fixture: a fresh, empty
repository in one transaction. A refused write ends its test (on PostgreSQL it aborts
the transaction)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit import merkle
from services.audit.domain import AuditEntry, SignedHead, SignedPruning, entry_from
from services.audit.ports import AuditRepository, ErasureReview
from tests.factories import audit_event, pseudonym

KEY = Ed25519PrivateKey.generate()
# Past any retention, and a cutoff after it that lies more than a year back (the
# pruning guards refuse a later one).
OLD = datetime(2019, 3, 1, 9, 0, tzinfo=UTC)
CUTOFF = datetime(2020, 3, 1, tzinfo=UTC)
RECENT = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def entry(n: int, *subjects: str, at: datetime = RECENT) -> AuditEntry:
    return entry_from(audit_event(n, *subjects, at=at), at)


async def logged(repo: AuditRepository, *entries: AuditEntry) -> list[int]:
    """Append `entries` one by one; their leaf indexes."""
    indexes = []
    for e in entries:
        indexes.append(await repo.size())
        await repo.append(e)
    return indexes


def leaves(entries: list[AuditEntry]) -> list[bytes]:
    return [merkle.leaf_hash(e.canonical) for e in entries]


def listing(subject: str, partner: str = "school-de-regenboog") -> ErasureReview:
    return ErasureReview(
        request_id=uuid.uuid4(),
        subject=subject,
        partner_id=partner,
        requested_at=RECENT,
        ended=1,
        organisations_remaining=2,
    )


class AuditRepositoryContract:
    # --- the tree -----------------------------------------------------------------

    async def test_appended_entries_are_consecutive_leaves_of_the_rfc_9162_tree(
        self, repo: AuditRepository
    ) -> None:
        assert await repo.size() == 0
        assert await repo.root(0) == merkle.EMPTY_ROOT
        entries = [entry(n) for n in range(11)]
        assert await logged(repo, *entries) == list(range(11))
        assert await repo.size() == 11
        for size in range(12):
            assert await repo.root(size) == merkle.root_of(leaves(entries[:size]))

    async def test_entries_appended_in_steps_of_any_size_make_the_same_tree(
        self, repo: AuditRepository
    ) -> None:
        # Steps that end inside, on and across perfect subtrees: 1, 2, 5, 8, 1, 13 leaves.
        entries = [entry(n) for n in range(30)]
        at = 0
        for step in (1, 2, 5, 8, 1, 13):
            await repo.append(*entries[at : at + step])
            at += step
            assert await repo.size() == at
        for size in range(31):
            assert await repo.root(size) == merkle.root_of(leaves(entries[:size]))

    async def test_an_event_is_logged_once(self, repo: AuditRepository) -> None:
        first = entry(0)
        await repo.append(first)
        with pytest.raises((asyncpg.UniqueViolationError, ValueError)):
            await repo.append(entry_from(first.event, NOW))

    async def test_the_latest_head_is_of_the_largest_tree(self, repo: AuditRepository) -> None:
        assert await repo.latest_head() is None
        await logged(repo, *(entry(n) for n in range(5)))

        def head(size: int, root: bytes, day: int) -> SignedHead:
            return SignedHead.sign(KEY, "audit-1", size, root, RECENT.replace(day=day))

        small = head(2, await repo.root(2), 9)
        early, late = head(5, await repo.root(5), 3), head(5, await repo.root(5), 4)
        for h in (early, small, late):
            await repo.add_head(h)
        assert await repo.latest_head() == late
        assert late.verifies(KEY.public_key())

    # --- retention ----------------------------------------------------------------

    async def test_a_pruning_removes_the_leading_entries_and_keeps_the_tree(
        self, repo: AuditRepository
    ) -> None:
        child = pseudonym()
        entries = [entry(n, child, at=OLD if n < 3 else RECENT) for n in range(6)]
        await logged(repo, *entries)
        roots = [await repo.root(size) for size in range(7)]
        assert (await repo.pruned_upto(), await repo.prunable_upto(CUTOFF)) == (0, 3)

        pruning = SignedPruning.sign(KEY, "audit-1", 3, roots[3], CUTOFF, NOW)
        assert await repo.prune(pruning) == 3
        assert await repo.pruned_upto() == 3
        assert await repo.prunable_upto(CUTOFF) == 3  # nothing more is past the cutoff
        assert await repo.events_about(child) == [e.event for e in entries[3:]]
        # The tree keeps its size, its roots and the pruned prefix's root.
        assert await repo.size() == 6
        assert [await repo.root(size) for size in range(7)] == roots
        assert pruning.prefix_root == merkle.root_of(leaves(entries[:3]))
        await repo.append(entry(6))
        assert await repo.size() == 7

    async def test_a_pruning_never_removes_the_last_entry(self, repo: AuditRepository) -> None:
        await logged(repo, entry(0, at=OLD), entry(1, at=OLD))
        assert await repo.prunable_upto(CUTOFF) == 2
        everything = SignedPruning.sign(KEY, "audit-1", 2, await repo.root(2), CUTOFF, NOW)
        with pytest.raises((asyncpg.InsufficientPrivilegeError, PermissionError)):
            await repo.prune(everything)

    async def test_a_pruning_covers_only_entries_recorded_before_its_cutoff(
        self, repo: AuditRepository
    ) -> None:
        await logged(repo, entry(0, at=OLD), entry(1), entry(2))
        newer = SignedPruning.sign(KEY, "audit-1", 2, await repo.root(2), CUTOFF, NOW)
        with pytest.raises((asyncpg.InsufficientPrivilegeError, PermissionError)):
            await repo.prune(newer)

    # --- what the log says about a subject ---------------------------------------

    async def test_the_events_about_a_subject_in_log_order(self, repo: AuditRepository) -> None:
        child, sibling = pseudonym(), pseudonym()
        entries = [entry(0, child), entry(1, sibling), entry(2), entry(3, sibling, child)]
        await logged(repo, *entries)
        assert await repo.events_about(child) == [entries[0].event, entries[3].event]
        assert await repo.events_about(sibling) == [entries[1].event, entries[3].event]
        assert await repo.events_about(pseudonym()) == []

    async def test_a_report_is_kept_once(self, repo: AuditRepository) -> None:
        request_id = uuid.uuid4()
        assert await repo.save_report(request_id, {"request_id": str(request_id), "matches": []})
        assert not await repo.save_report(request_id, {"request_id": str(request_id)})
        assert await repo.save_report(uuid.uuid4(), {})

    # --- erasure reviews ----------------------------------------------------------

    async def test_a_review_is_listed_once_and_decided_once(self, repo: AuditRepository) -> None:
        child = pseudonym()
        listed = listing(child)
        assert await repo.review(listed.request_id) is None
        assert not await repo.pending_of(child, listed.partner_id)
        assert await repo.add_review(listed)
        assert not await repo.add_review(listed)
        assert await repo.review(listed.request_id) == listed
        assert await repo.pending_of(child, listed.partner_id)
        assert not await repo.pending_of(child, "jgz-voorbeeldrade")

        assert await repo.add_decision(listed.request_id, False, "fg-mira", "lopend onderzoek")
        assert not await repo.add_decision(listed.request_id, True, "fg-joost", "")
        decided = await repo.review(listed.request_id)
        assert decided is not None and decided.decided_at is not None
        assert (decided.approved, decided.decided_by, decided.reason) == (
            False,
            "fg-mira",
            "lopend onderzoek",
        )
        assert not await repo.pending_of(child, listed.partner_id)
        # Another request of the same subject and partner is pending on its own.
        again = listing(child)
        assert await repo.add_review(again)
        assert await repo.pending_of(child, listed.partner_id)

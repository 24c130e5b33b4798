"""Audit's repository in memory: the same contract as PostgreSQL's
(tests/audit_repository_contract.py runs one suite over both), for tests of the use
cases. The tree is kept as PostgreSQL keeps it, the hashes of its perfect subtrees made
by merkle.py as each leaf is appended, so the same entries give the same roots; and the
guards of the log's tables are kept as checks. One process, one task: no locks."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from services.audit import merkle
from services.audit.domain import AuditEntry, SignedHead, SignedPruning, retention_cutoff
from services.audit.ports import ErasureReview
from shared.contracts import AuditEvent


class InMemoryRepository:
    """ports.AuditRepository in memory. What it keeps is open to a test: `entries` by
    leaf index, `heads` and `prunings` in the order made, `reports` by request."""

    def __init__(self) -> None:
        self.entries: dict[int, AuditEntry] = {}
        self.nodes: dict[tuple[int, int], bytes] = {}  # (level, position): subtree hash
        self.heads: list[SignedHead] = []
        self.prunings: list[SignedPruning] = []
        self.reports: dict[uuid.UUID, dict[str, Any]] = {}
        self.reviews: dict[uuid.UUID, ErasureReview] = {}
        self.decisions: dict[uuid.UUID, tuple[bool, str, str, datetime]] = {}

    def _subtree(self, start: int, end: int) -> bytes:
        width = end - start
        return self.nodes[(width.bit_length() - 1, start // width)]

    async def lock_tree(self) -> None:
        pass

    async def append(self, *entries: AuditEntry) -> None:
        for entry in entries:
            if any(e.event.event_id == entry.event.event_id for e in self.entries.values()):
                raise ValueError(f"audit event {entry.event.event_id} is logged already")
            index = await self.size()
            leaf = merkle.leaf_hash(entry.canonical)
            for level, position, hash_ in merkle.perfect_nodes_completed(
                index, leaf, self._subtree
            ):
                self.nodes[(level, position)] = hash_
            self.entries[index] = entry

    async def size(self) -> int:
        # As PostgreSQL counts: from the last entry, which no pruning removes.
        return max(self.entries) + 1 if self.entries else 0

    async def root(self, size: int) -> bytes:
        if size == 0:
            return merkle.EMPTY_ROOT
        return merkle.range_hash(self._subtree, 0, size)

    async def latest_head(self) -> SignedHead | None:
        return max(self.heads, key=lambda h: (h.size, h.signed_at), default=None)

    async def add_head(self, head: SignedHead) -> None:
        if any((h.size, h.signed_at) == (head.size, head.signed_at) for h in self.heads):
            raise ValueError(f"a head of size {head.size} was signed at {head.signed_at}")
        self.heads.append(head)

    async def pruned_upto(self) -> int:
        return max((p.upto for p in self.prunings), default=0)

    async def prunable_upto(self, cutoff: datetime) -> int:
        kept = [i for i, e in self.entries.items() if e.recorded_at >= cutoff]
        return min(kept) if kept else await self.size()

    async def prune(self, pruning: SignedPruning) -> int:
        # The guards PostgreSQL's triggers keep (migrations/004_pruning_guards.sql).
        if pruning.cutoff > retention_cutoff(datetime.now(UTC), 1):
            raise PermissionError(
                f"a pruning cutoff must lie at least a year back, not {pruning.cutoff}"
            )
        if pruning.upto > max(self.entries, default=0):
            raise PermissionError("a pruning never removes the last entry")
        covered = [i for i in self.entries if i < pruning.upto]
        if any(self.entries[i].recorded_at >= pruning.cutoff for i in covered):
            raise PermissionError("a pruning covers only entries recorded before its cutoff")
        if any(p.upto == pruning.upto for p in self.prunings):
            raise ValueError(f"a pruning up to {pruning.upto} is recorded already")
        self.prunings.append(pruning)
        for i in covered:
            del self.entries[i]
        return len(covered)

    async def events_about(self, subject: str) -> list[AuditEvent]:
        return [
            self.entries[i].event
            for i in sorted(self.entries)
            if subject in self.entries[i].event.subjects
        ]

    async def save_report(self, request_id: uuid.UUID, report: dict[str, Any]) -> bool:
        if request_id in self.reports:
            return False
        self.reports[request_id] = report
        return True

    async def review(self, request_id: uuid.UUID) -> ErasureReview | None:
        listed = self.reviews.get(request_id)
        if listed is None or request_id not in self.decisions:
            return listed
        approved, decided_by, reason, decided_at = self.decisions[request_id]
        return replace(
            listed, approved=approved, decided_by=decided_by, reason=reason, decided_at=decided_at
        )

    async def pending_of(self, subject: str, partner_id: str) -> bool:
        return any(
            (r.subject, r.partner_id) == (subject, partner_id) and i not in self.decisions
            for i, r in self.reviews.items()
        )

    async def add_review(self, review: ErasureReview) -> bool:
        if review.request_id in self.reviews:
            return False
        # Only the request is listed: a decision is added on its own.
        self.reviews[review.request_id] = replace(
            review, approved=None, decided_by=None, reason=None, decided_at=None
        )
        return True

    async def add_decision(
        self, request_id: uuid.UUID, approved: bool, decided_by: str, reason: str
    ) -> bool:
        if request_id not in self.reviews:
            raise ValueError(f"no erasure review {request_id} is listed")
        if request_id in self.decisions:
            return False
        self.decisions[request_id] = (approved, decided_by, reason, datetime.now(UTC))
        return True

"""What audit's use cases need: a repository of the append-only log (its entries the
leaves of a Merkle tree, with the signed heads and prunings), the data subjects' access
reports and the erasure reviews with their decisions; and the unit of work
(shared/unit_of_work.py). PostgreSQL (store.py) and memory (memory.py) implement the
repository; tests/audit_repository_contract.py holds both to the same behaviour."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from services.audit.domain import AuditEntry, SignedHead, SignedPruning
from shared.contracts import AuditEvent
from shared.unit_of_work import UnitOfWork as SharedUnitOfWork


@dataclass(frozen=True)
class ErasureReview:
    """A subject's erasure awaiting (or past) the privacy officer's decision."""

    request_id: uuid.UUID
    subject: str
    partner_id: str
    requested_at: datetime
    ended: int
    organisations_remaining: int
    approved: bool | None = None  # None: not decided yet
    decided_by: str | None = None
    reason: str | None = None
    decided_at: datetime | None = None


class AuditRepository(Protocol):
    """The log and what is kept beside it. Nothing is changed once written: entries go
    only by a signed pruning, and the tree's nodes never go."""

    # --- the tree -----------------------------------------------------------------

    async def lock_tree(self) -> None:
        """Serialise work on the tree across instances until the unit of work ends."""

    async def append(self, *entries: AuditEntry) -> None:
        """Append entries as the next leaves, in their order, in one step (under the
        tree's lock; within a batch of messages, when the batch commits). An event
        logged before is refused."""

    async def size(self) -> int:
        """Leaves in the tree, the pruned ones included."""

    async def root(self, size: int) -> bytes:
        """The root of the tree of the first `size` leaves (RFC 9162)."""

    async def latest_head(self) -> SignedHead | None:
        """The head of the largest tree, the latest signed of those."""

    async def add_head(self, head: SignedHead) -> None: ...

    # --- retention ----------------------------------------------------------------

    async def pruned_upto(self) -> int:
        """How many leading entries were pruned (0: none)."""

    async def prunable_upto(self, cutoff: datetime) -> int:
        """How many leading entries were all recorded before `cutoff`."""

    async def prune(self, pruning: SignedPruning) -> int:
        """Record the signed pruning and remove the entries it covers; how many went. The
        tree's nodes stay. Refused for a cutoff less than a year back, for the last entry,
        and for an entry recorded at or after the cutoff."""

    # --- what the log says about a subject ---------------------------------------

    async def events_about(self, subject: str) -> list[AuditEvent]:
        """The logged events that name `subject`, in log order."""

    async def save_report(self, request_id: uuid.UUID, report: dict[str, Any]) -> bool:
        """Keep a data subject's access report; False when one was kept for the request."""

    # --- erasure reviews ----------------------------------------------------------

    async def review(self, request_id: uuid.UUID) -> ErasureReview | None:
        """A review with its decision, if taken."""

    async def pending_of(self, subject: str, partner_id: str) -> bool:
        """Whether a review of this subject asked by this partner awaits a decision."""

    async def add_review(self, review: ErasureReview) -> bool:
        """List a review; False when one with its request id is listed already."""

    async def add_decision(
        self, request_id: uuid.UUID, approved: bool, decided_by: str, reason: str
    ) -> bool:
        """Decide a listed review; False when it was decided before (never changed)."""


UnitOfWork = SharedUnitOfWork[AuditRepository]

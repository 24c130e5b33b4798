"""What matching's use cases need from the world, and nothing more: a repository of
registrations, family clusters, matches, counts and pending shreds; a unit of work that
holds the repository, the outbox and the audit trail in one transaction; and the key
store's sealing. PostgreSQL (store.py) and memory (memory.py) implement the repository,
and one contract suite (tests/matching_repository_contract.py) holds both to the same behaviour.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from services.matching.domain import EndReason, OpenMatch, Raise, Registration
from shared.contracts import MatchKind, OrganisationCategory
from shared.unit_of_work import UnitOfWork as SharedUnitOfWork


@dataclass(frozen=True)
class StoredRegistration:
    """A registration as kept: its personal fields sealed, to be opened with the key store."""

    registration_id: uuid.UUID
    subject: str
    organisation: str
    organisation_category: OrganisationCategory
    registered_at: datetime
    expires_at: datetime
    age_limit_from: date  # the first day of the month the youth reaches the age limit
    sealed: str
    end_reason: EndReason | None = None
    partner_id: str | None = None  # None: registered before partners were kept


@dataclass(frozen=True)
class MatchRef:
    """An open match a registration takes part in."""

    match_id: uuid.UUID
    kind: MatchKind
    key: str


@dataclass(frozen=True)
class Cell:
    """One wijk x theme x week count of distinct children."""

    wijk: str
    theme: str
    window: str
    children: int
    trend: bool = False


class MatchingRepository(Protocol):
    """Matching's state. Every read is by subject, cluster, match or index, so the cost
    per signal does not grow with history."""

    async def lock(self, names: Iterable[str]) -> None:
        """Serialise work on these names (subject:, cluster:, cell:) across instances
        until the unit of work ends; taken in sorted order."""

    # --- registrations --------------------------------------------------------------

    async def add_registration(self, reg: StoredRegistration) -> bool:
        """Store a registration; False when one with its id is kept already."""

    async def registration(self, registration_id: uuid.UUID) -> StoredRegistration | None: ...

    async def live_registrations(self, subjects: Sequence[str]) -> list[StoredRegistration]:
        """The registrations of these subjects that have not ended."""

    async def all_registrations(self, subject: str) -> list[StoredRegistration]:
        """Live and archived: everything kept of a subject."""

    async def unnoticed_archive(self, subject: str, now: datetime) -> list[tuple[uuid.UUID, str]]:
        """Archived registrations of a subject (id, organisation), oldest first, that no
        notice of earlier involvement has named yet."""

    async def mark_noticed(self, ids: Sequence[uuid.UUID], now: datetime) -> None: ...

    async def end_registration(
        self,
        registration_id: uuid.UUID,
        reason: EndReason,
        at: datetime,
        archive_until: datetime | None,
    ) -> None:
        """End a registration: archived until `archive_until`, or (None) gone at once
        with its places in matches."""

    async def due_to_end(self, now: datetime, limit: int) -> list[StoredRegistration]:
        """Live registrations whose end has come by `now`, soonest first."""

    async def archive_past(self, now: datetime, limit: int) -> list[tuple[uuid.UUID, str]]:
        """Delete archived registrations whose archive period has passed (id, subject),
        with their part in past matches; closed matches left empty go too."""

    async def next_due(self) -> datetime | None:
        """The soonest moment a live registration ends or an archived one goes."""

    async def organisations_of(self, subject: str) -> int:
        """How many organisations keep registrations (live or archived) of a subject."""

    async def subject_is_gone(self, subject: str) -> bool: ...

    async def forget_subject(self, subject: str) -> None:
        """The subject's place in its family cluster goes; with the cluster's last
        subject, its links go too."""

    # --- family clusters ------------------------------------------------------------

    async def join_family(self, subject: str, links: Sequence[str]) -> tuple[str, list[str]]:
        """Put a subject and its links in one cluster, merging clusters: (the cluster's
        id, the ids of the clusters it absorbed). A new cluster's id is random."""

    async def family_subjects(self, root: str) -> list[str]: ...

    async def family_root(self, subject: str) -> str | None: ...

    async def family_key(self, cluster: str) -> str:
        """The name of the key a cluster's family matches are sealed under (made if none)."""

    async def retire_family_key(self, cluster: str) -> str | None:
        """Unlist a cluster's key and return its name; the next one is new."""

    # --- matches --------------------------------------------------------------------

    async def open_match(
        self, kind: MatchKind, key: str, wijk_of: dict[uuid.UUID, str]
    ) -> OpenMatch | None:
        """The open match of a kind and key; its wijk is that of its newest participant
        found in `wijk_of`."""

    async def match_subjects(self, match_id: uuid.UUID) -> set[str]: ...

    async def open_family_matches(self, keys: Sequence[str]) -> list[uuid.UUID]:
        """Open family matches of these clusters, oldest first."""

    async def rekey_family_match(self, match_id: uuid.UUID, key: str) -> None: ...

    async def add_match(self, decision: Raise, at: datetime) -> bool:
        """Open a match with its participants, raised `at`; False when it was opened
        before."""

    async def add_participants(
        self, match_id: uuid.UUID, registrations: Sequence[Registration]
    ) -> None: ...

    async def open_matches_with(self, registration_id: uuid.UUID) -> list[MatchRef]: ...

    async def participant_ids(self, match_id: uuid.UUID) -> list[uuid.UUID]:
        """The registrations taking part in a match, in id order."""

    async def remove_participants(
        self, match_id: uuid.UUID, registration_ids: Sequence[uuid.UUID]
    ) -> None: ...

    async def close_match(self, match_id: uuid.UUID, status: str, at: datetime) -> None: ...

    async def counts(self) -> dict[str, int]:
        """Live registrations, open matches, open family matches."""

    # --- wijk x theme counts ----------------------------------------------------------

    async def set_count(self, wijk: str, theme: str, window: str, children: int) -> int | None:
        """Take a cell's count; the new count, or None when it is not higher (counts only
        grow)."""

    async def unpublished_cells(self, k: int, limit: int) -> list[Cell]:
        """Cells of at least k children whose count changed since last published."""

    async def mark_published(self, wijk: str, theme: str, window: str, children: int) -> None: ...

    async def window_counts(self, wijk: str, theme: str, windows: Sequence[str]) -> list[int]:
        """The counts of these windows, in their order, 0 where none is kept."""

    async def mark_trend(self, wijk: str, theme: str, window: str) -> bool:
        """Record a cell's trend once; False when it was recorded before."""

    async def cells(self, wijk: str, windows: Sequence[str]) -> list[Cell]: ...

    # --- shredding ------------------------------------------------------------------

    async def schedule_shred(self, subject: str) -> None: ...

    async def pending_shreds(self, limit: int) -> list[str]:
        """Data keys decided to go and not yet shredded, oldest decision first."""

    async def shredded(self, subject: str) -> None: ...


# One transaction: the repository's changes, the events, the audit entries and the claim
# of the message that caused them commit together or not at all (shared/unit_of_work.py).
UnitOfWork = SharedUnitOfWork[MatchingRepository]


class Keys(Protocol):
    """The key store as matching uses it (shared/keystore.KeyStore)."""

    async def seal(self, subject: str, aad: bytes, plaintext: bytes, *, create: bool) -> str: ...

    async def open_sealed(self, subject: str, aad: bytes, sealed: str) -> bytes: ...

    async def shred(self, subject: str) -> bool: ...

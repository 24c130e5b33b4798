"""What intake's use cases need: a repository of admitted and refused signal ids, held
(sealed) theme observations, wijk x theme counts and trend windows; the unit of work
(shared/unit_of_work.py); and the key store's sealing. PostgreSQL (store.py) and memory
(memory.py) implement the repository; tests/intake_repository_contract.py holds both to
the same behaviour."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.contracts import SignalAccepted
from shared.unit_of_work import UnitOfWork as SharedUnitOfWork


@dataclass(frozen=True)
class Held:
    """A theme observation held, sealed under its week's key, until it is counted."""

    observation_id: uuid.UUID
    window: str
    sealed: str


@dataclass(frozen=True)
class CellCount:
    wijk: str
    theme: str
    window: str
    children: int


class IntakeRepository(Protocol):
    async def record_accepted(self, accepted: SignalAccepted) -> None: ...

    async def record_rejected(
        self, signal_id: uuid.UUID, partner_id: str, reason_code: str, at: datetime
    ) -> None:
        """The latest refusal of a signal id (a corrected resend may still get in)."""

    async def was_accepted(self, signal_id: uuid.UUID) -> bool: ...

    async def counts(self) -> dict[str, int]:
        """Signals accepted and rejected (counts only)."""

    async def hold_observation(self, window: str, sealed: str, at: datetime) -> None: ...

    async def take_observations(
        self, at_least: int, held_before: datetime, limit: int
    ) -> list[Held]:
        """The held observations to count now, removed: up to `limit`, oldest first, when
        there are at least `at_least` or the oldest was held since before `held_before`;
        otherwise none, so that no count changes by one signal alone."""

    async def count_child(self, cell: tuple[str, str, str], token: str) -> bool:
        """Count a child once in its wijk x theme week; False if it was counted before."""

    async def take_changed_cells(self, k: int, limit: int) -> list[CellCount]:
        """Cells of at least k children that grew by at least k since last published,
        marked published: no published count differs from the one before by fewer than
        k children."""

    async def remember_window(self, window: str, at: datetime) -> None:
        """Note that a week has a key in the key store (to destroy it once closed)."""

    async def closed_windows(self, older_than: datetime) -> list[str]:
        """Weeks noted before `older_than`, in order."""

    async def forget_window(self, window: str) -> None:
        """The week's key is destroyed: its tokens go (its counts stay)."""


UnitOfWork = SharedUnitOfWork[IntakeRepository]


class Keys(Protocol):
    """The key store as intake uses it (shared/keystore.KeyStore)."""

    async def seal(self, subject: str, aad: bytes, plaintext: bytes, *, create: bool) -> str: ...

    async def open_sealed(self, subject: str, aad: bytes, sealed: str) -> bytes: ...

    async def token_key(self, name: str) -> bytes: ...

    async def shred(self, subject: str) -> bool: ...

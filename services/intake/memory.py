"""Intake's repository in memory: the same contract as PostgreSQL's
(tests/intake_repository_contract.py runs one suite over both), for tests of the use
cases."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from services.intake.ports import CellCount, Held
from shared.contracts import SignalAccepted


@dataclass
class _Cell:
    children: int = 0
    published: int = 0


class InMemoryRepository:
    def __init__(self) -> None:
        self.accepted: set[uuid.UUID] = set()
        self.rejected: dict[uuid.UUID, tuple[str, str, datetime]] = {}
        self.held: dict[uuid.UUID, tuple[datetime, str, str]] = {}
        self.tokens: set[tuple[str, str, str, str]] = set()
        self.cells: dict[tuple[str, str, str], _Cell] = {}
        self.windows: dict[str, datetime] = {}

    async def record_accepted(self, accepted: SignalAccepted) -> None:
        if accepted.signal_id in self.accepted:
            raise ValueError(f"signal {accepted.signal_id} was accepted before")
        self.accepted.add(accepted.signal_id)

    async def record_rejected(
        self, signal_id: uuid.UUID, partner_id: str, reason_code: str, at: datetime
    ) -> None:
        known = self.rejected.get(signal_id)
        self.rejected[signal_id] = (known[0] if known else partner_id, reason_code, at)

    async def was_accepted(self, signal_id: uuid.UUID) -> bool:
        return signal_id in self.accepted

    async def counts(self) -> dict[str, int]:
        return {"accepted": len(self.accepted), "rejected": len(self.rejected)}

    async def hold_observation(self, window: str, sealed: str, at: datetime) -> None:
        self.held[uuid.uuid4()] = (at, window, sealed)

    async def take_observations(
        self, at_least: int, held_before: datetime, limit: int
    ) -> list[Held]:
        if not self.held:
            return []
        oldest = min(at for at, _, _ in self.held.values())
        if len(self.held) < at_least and oldest >= held_before:
            return []
        taken = sorted(self.held.items(), key=lambda item: (item[1][0], item[0]))[:limit]
        for observation_id, _ in taken:
            del self.held[observation_id]
        return [Held(i, window, sealed) for i, (_, window, sealed) in taken]

    async def count_child(self, cell: tuple[str, str, str], token: str) -> bool:
        if (*cell, token) in self.tokens:
            return False
        self.tokens.add((*cell, token))
        self.cells.setdefault(cell, _Cell()).children += 1
        return True

    async def take_changed_cells(self, k: int, limit: int) -> list[CellCount]:
        changed = sorted(c for c, n in self.cells.items() if n.children - n.published >= k)
        taken = []
        for cell in changed[:limit]:
            self.cells[cell].published = self.cells[cell].children
            taken.append(CellCount(*cell, self.cells[cell].children))
        return taken

    async def remember_window(self, window: str, at: datetime) -> None:
        self.windows.setdefault(window, at)

    async def closed_windows(self, older_than: datetime) -> list[str]:
        return sorted(w for w, at in self.windows.items() if at < older_than)

    async def forget_window(self, window: str) -> None:
        self.tokens = {t for t in self.tokens if t[2] != window}
        self.windows.pop(window, None)

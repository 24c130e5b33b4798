"""Matching's repository in memory: the same contract as PostgreSQL's
(tests/matching_repository_contract.py runs one suite over both), for the replay and for tests
of the use cases. One process, one task: locks are not needed and not taken."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.matching.domain import EndReason, OpenMatch, Raise, Registration
from services.matching.ports import Cell, MatchRef, StoredRegistration
from shared.contracts import MatchKind


@dataclass
class _Kept:
    reg: StoredRegistration
    archive_until: datetime | None = None
    noticed: bool = False


@dataclass
class _Match:
    match_id: uuid.UUID
    kind: MatchKind
    key: str
    raised_at: datetime
    status: str = "open"
    participants: set[uuid.UUID] = field(default_factory=set)


@dataclass
class _Count:
    children: int
    published: int = 0
    trend: bool = False


def random_id() -> str:
    return secrets.token_hex(32)


class InMemoryRepository:
    """ports.MatchingRepository in memory. `new_id` makes the ids of new family clusters
    and `new_key` the names of their keys (random by default; the replay makes them
    repeatable, each from its own stream, so a cluster's id does not depend on how many
    keys were made before it)."""

    def __init__(
        self, new_id: Callable[[], str] = random_id, new_key: Callable[[], str] = random_id
    ) -> None:
        self.new_id = new_id
        self.new_key = new_key
        self.registrations: dict[uuid.UUID, _Kept] = {}
        self.nodes: dict[str, str] = {}  # family node -> cluster
        self.family_keys: dict[str, str] = {}
        self.matches: dict[uuid.UUID, _Match] = {}
        self.counts_: dict[tuple[str, str, str], _Count] = {}
        self.pending: dict[str, None] = {}  # insertion-ordered

    async def lock(self, names: Iterable[str]) -> None:
        return None

    # --- registrations --------------------------------------------------------------

    async def add_registration(self, reg: StoredRegistration) -> bool:
        if reg.registration_id in self.registrations:
            return False
        self.registrations[reg.registration_id] = _Kept(reg)
        return True

    async def registration(self, registration_id: uuid.UUID) -> StoredRegistration | None:
        kept = self.registrations.get(registration_id)
        return kept.reg if kept else None

    async def live_registrations(self, subjects: Sequence[str]) -> list[StoredRegistration]:
        wanted = set(subjects)
        return [
            k.reg
            for k in self.registrations.values()
            if k.reg.subject in wanted and k.reg.end_reason is None
        ]

    async def all_registrations(self, subject: str) -> list[StoredRegistration]:
        return [k.reg for k in self.registrations.values() if k.reg.subject == subject]

    async def unnoticed_archive(self, subject: str, now: datetime) -> list[tuple[uuid.UUID, str]]:
        found = sorted(
            (
                k.reg
                for k in self.registrations.values()
                if k.reg.subject == subject
                and k.archive_until is not None
                and k.archive_until > now
                and not k.noticed
            ),
            key=lambda r: (r.registered_at, r.registration_id),
        )
        return [(r.registration_id, r.organisation) for r in found]

    async def mark_noticed(self, ids: Sequence[uuid.UUID], now: datetime) -> None:
        for i in ids:
            if i in self.registrations:
                self.registrations[i].noticed = True

    async def end_registration(
        self,
        registration_id: uuid.UUID,
        reason: EndReason,
        at: datetime,
        archive_until: datetime | None,
    ) -> None:
        if archive_until is None:
            self._delete([registration_id])
            return
        kept = self.registrations[registration_id]
        kept.reg = replace(kept.reg, end_reason=reason)
        kept.archive_until = archive_until

    def _delete(self, ids: Iterable[uuid.UUID]) -> None:
        for i in ids:
            self.registrations.pop(i, None)
            for m in self.matches.values():
                m.participants.discard(i)

    async def due_to_end(self, now: datetime, limit: int) -> list[StoredRegistration]:
        due = sorted(
            (
                k.reg
                for k in self.registrations.values()
                if k.reg.end_reason is None and k.reg.expires_at <= now
            ),
            key=lambda r: (r.expires_at, r.registration_id),
        )
        return due[:limit]

    async def archive_past(self, now: datetime, limit: int) -> list[tuple[uuid.UUID, str]]:
        past = sorted(
            (
                (k.archive_until, k.reg.registration_id, k.reg.subject)
                for k in self.registrations.values()
                if k.archive_until is not None and k.archive_until <= now
            ),
        )[:limit]
        self._delete(i for _, i, _ in past)
        if past:
            for match_id in [
                m.match_id
                for m in self.matches.values()
                if m.status != "open" and not m.participants
            ]:
                del self.matches[match_id]
        return [(i, subject) for _, i, subject in past]

    async def next_due(self) -> datetime | None:
        times = [
            k.reg.expires_at if k.reg.end_reason is None else k.archive_until
            for k in self.registrations.values()
        ]
        return min((t for t in times if t is not None), default=None)

    async def organisations_of(self, subject: str) -> int:
        return len(
            {
                k.reg.partner_id or f"organisation:{k.reg.organisation}"
                for k in self.registrations.values()
                if k.reg.subject == subject
            }
        )

    async def subject_is_gone(self, subject: str) -> bool:
        return not any(k.reg.subject == subject for k in self.registrations.values())

    async def forget_subject(self, subject: str) -> None:
        cluster = self.nodes.pop(f"s:{subject}", None)
        if cluster is None:
            return
        members = [n for n, c in self.nodes.items() if c == cluster]
        if not any(n.startswith("s:") for n in members):
            for n in members:
                del self.nodes[n]

    # --- family clusters ------------------------------------------------------------

    async def join_family(self, subject: str, links: Sequence[str]) -> tuple[str, list[str]]:
        nodes = [f"s:{subject}", *(f"l:{link}" for link in links)]
        roots = {self.nodes[n] for n in nodes if n in self.nodes}
        root = min(roots) if roots else self.new_id()
        absorbed = sorted(roots - {root})
        for n in nodes:
            self.nodes.setdefault(n, root)
        if absorbed:
            for n, c in self.nodes.items():
                if c in absorbed:
                    self.nodes[n] = root
        return root, absorbed

    async def family_subjects(self, root: str) -> list[str]:
        return [n[2:] for n, c in self.nodes.items() if c == root and n.startswith("s:")]

    async def family_root(self, subject: str) -> str | None:
        return self.nodes.get(f"s:{subject}")

    async def family_key(self, cluster: str) -> str:
        if cluster not in self.family_keys:
            self.family_keys[cluster] = self.new_key()
        return self.family_keys[cluster]

    async def retire_family_key(self, cluster: str) -> str | None:
        return self.family_keys.pop(cluster, None)

    # --- matches --------------------------------------------------------------------

    def _open(self, kind: MatchKind, key: str) -> _Match | None:
        return next(
            (
                m
                for m in self.matches.values()
                if m.kind is kind and m.key == key and m.status == "open"
            ),
            None,
        )

    async def open_match(
        self, kind: MatchKind, key: str, wijk_of: dict[uuid.UUID, str]
    ) -> OpenMatch | None:
        m = self._open(kind, key)
        if m is None:
            return None
        ids = sorted(
            m.participants,
            key=lambda i: (self.registrations[i].reg.registered_at, i),
        )
        wijk = next((wijk_of[i] for i in reversed(ids) if i in wijk_of), "")
        return OpenMatch(m.match_id, kind, key, frozenset(ids), wijk)

    async def match_subjects(self, match_id: uuid.UUID) -> set[str]:
        m = self.matches.get(match_id)
        return {self.registrations[i].reg.subject for i in m.participants} if m else set()

    async def open_family_matches(self, keys: Sequence[str]) -> list[uuid.UUID]:
        wanted = set(keys)
        found = sorted(
            (m.raised_at, m.match_id)
            for m in self.matches.values()
            if m.kind is MatchKind.FAMILY and m.key in wanted and m.status == "open"
        )
        return [i for _, i in found]

    async def rekey_family_match(self, match_id: uuid.UUID, key: str) -> None:
        self.matches[match_id].key = key

    async def add_match(self, decision: Raise, at: datetime) -> bool:
        if decision.match_id in self.matches:
            return False
        self.matches[decision.match_id] = _Match(decision.match_id, decision.kind, decision.key, at)
        await self.add_participants(decision.match_id, decision.participants)
        return True

    async def add_participants(
        self, match_id: uuid.UUID, registrations: Sequence[Registration]
    ) -> None:
        self.matches[match_id].participants.update(r.registration_id for r in registrations)

    async def open_matches_with(self, registration_id: uuid.UUID) -> list[MatchRef]:
        found = sorted(
            (m.raised_at, m.match_id, m)
            for m in self.matches.values()
            if m.status == "open" and registration_id in m.participants
        )
        return [MatchRef(m.match_id, m.kind, m.key) for _, _, m in found]

    async def participant_ids(self, match_id: uuid.UUID) -> list[uuid.UUID]:
        return sorted(self.matches[match_id].participants)

    async def remove_participants(
        self, match_id: uuid.UUID, registration_ids: Sequence[uuid.UUID]
    ) -> None:
        self.matches[match_id].participants.difference_update(registration_ids)

    async def close_match(self, match_id: uuid.UUID, status: str, at: datetime) -> None:
        self.matches[match_id].status = status

    async def counts(self) -> dict[str, int]:
        open_ = [m for m in self.matches.values() if m.status == "open"]
        return {
            "registrations": sum(
                1 for k in self.registrations.values() if k.reg.end_reason is None
            ),
            "open_matches": len(open_),
            "open_family_matches": sum(1 for m in open_ if m.kind is MatchKind.FAMILY),
        }

    # --- wijk x theme counts ----------------------------------------------------------

    async def set_count(self, wijk: str, theme: str, window: str, children: int) -> int | None:
        cell = self.counts_.get((wijk, theme, window))
        if cell is None:
            self.counts_[(wijk, theme, window)] = _Count(children)
            return children
        if cell.children >= children:
            return None
        cell.children = children
        return children

    async def unpublished_cells(self, k: int, limit: int) -> list[Cell]:
        found = sorted(
            ((window, wijk, theme), c)
            for (wijk, theme, window), c in self.counts_.items()
            if c.children != c.published and c.children >= k
        )[:limit]
        return [
            Cell(wijk, theme, window, c.children, c.trend) for (window, wijk, theme), c in found
        ]

    async def mark_published(self, wijk: str, theme: str, window: str, children: int) -> None:
        if (cell := self.counts_.get((wijk, theme, window))) is not None:
            cell.published = children

    async def window_counts(self, wijk: str, theme: str, windows: Sequence[str]) -> list[int]:
        return [c.children if (c := self.counts_.get((wijk, theme, w))) else 0 for w in windows]

    async def mark_trend(self, wijk: str, theme: str, window: str) -> bool:
        cell = self.counts_.get((wijk, theme, window))
        if cell is None or cell.trend:
            return False
        cell.trend = True
        return True

    async def cells(self, wijk: str, windows: Sequence[str]) -> list[Cell]:
        wanted = set(windows)
        found = sorted(
            (window, theme, c)
            for (w, theme, window), c in self.counts_.items()
            if w == wijk and window in wanted
        )
        return [Cell(wijk, theme, window, c.children, c.trend) for window, theme, c in found]

    # --- shredding ------------------------------------------------------------------

    async def schedule_shred(self, subject: str) -> None:
        self.pending.setdefault(subject, None)

    async def pending_shreds(self, limit: int) -> list[str]:
        return list(self.pending)[:limit]

    async def shredded(self, subject: str) -> None:
        self.pending.pop(subject, None)

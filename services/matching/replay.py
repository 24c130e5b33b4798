"""Replay for policy makers: the matching domain run offline over a file of
`SignalAccepted` events, in event-time order, writing every decision.

Deterministic: the same policy and input give the same output, byte for byte (decision
ids derive from their inputs; time is the events' own). Opening the sealed personal
fields (wijk, family links) needs the key store; without it, family links are unknown
and only person matches are decided.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from services.matching.domain import (
    Decision,
    Dissolve,
    FamilyClusters,
    Join,
    Leave,
    OpenMatch,
    Raise,
    Registration,
    Transfer,
    decide,
    end_reason_at,
    expires_at,
    family_links,
)
from shared.contracts import (
    MatchKind,
    SealedSignal,
    SignalAccepted,
    WorkerContact,
    month_start,
)
from shared.policy import Policy

Opener = Callable[[SignalAccepted], Awaitable[SealedSignal | None]]
_UNKNOWN = WorkerContact(worker_id="-", display_name="-", email="unknown@invalid.example")


class ReplayInputError(ValueError):
    """A line of the input is not a SignalAccepted; the message names the line."""


def read_events(path: Path) -> list[SignalAccepted]:
    events = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                events.append(SignalAccepted.model_validate_json(line))
            except ValueError as exc:
                first = str(exc).splitlines()[0]
                raise ReplayInputError(f"{path}:{number}: not a SignalAccepted ({first})") from None
    return sorted(events, key=lambda e: (e.registered_at, str(e.event_id)))


@dataclass
class Replay:
    policy: Policy
    registrations: dict[str, list[Registration]] = field(default_factory=dict)
    clusters: FamilyClusters = field(default_factory=FamilyClusters)
    open_matches: dict[tuple[MatchKind, str], OpenMatch] = field(default_factory=dict)
    raised_order: dict[object, int] = field(default_factory=dict)

    def _decide(
        self, kind: MatchKind, key: str, regs: list[Registration], now: datetime
    ) -> list[Decision]:
        decisions = decide(kind, key, regs, self.open_matches.get((kind, key)), self.policy, now)
        for d in decisions:
            if isinstance(d, Raise):
                self.raised_order[d.match_id] = len(self.raised_order)
                self.open_matches[(kind, key)] = OpenMatch(
                    d.match_id,
                    kind,
                    key,
                    frozenset(r.registration_id for r in d.participants),
                    d.wijk,
                )
            elif isinstance(d, Join):
                current = self.open_matches[(kind, key)]
                self.open_matches[(kind, key)] = OpenMatch(
                    current.match_id,
                    kind,
                    key,
                    current.participants | {r.registration_id for r in d.newcomers},
                    d.newcomers[-1].wijk,
                )
            elif isinstance(d, Leave):
                current = self.open_matches[(kind, key)]
                self.open_matches[(kind, key)] = OpenMatch(
                    current.match_id,
                    kind,
                    key,
                    current.participants - set(d.left),
                    current.wijk,
                )
            elif isinstance(d, Dissolve):
                del self.open_matches[(kind, key)]
        return decisions

    def reconsider(self, subject: str, now: datetime) -> list[Decision]:
        decisions = self._decide(
            MatchKind.PERSON, subject, self.registrations.get(subject, []), now
        )
        node = f"s:{subject}"
        if self.policy.matching.family.enabled and node in self.clusters.parent:
            root = self.clusters.find(node)
            family = [
                r
                for s in sorted(self.clusters.members(root))
                for r in self.registrations.get(s, [])
            ]
            decisions += self._decide(MatchKind.FAMILY, root, family, now)
        return decisions

    def expire(self, now: datetime) -> Iterator[tuple[datetime, Decision]]:
        for subject in sorted(self.registrations):
            regs = self.registrations[subject]
            changed = False
            for i, reg in enumerate(regs):
                reason = end_reason_at(reg, now)
                if reason is not None:
                    regs[i] = reg.ended(reason, reg.expires_at)
                    changed = True
            if changed:
                for d in self.reconsider(subject, now):
                    yield now, d

    def add(self, event: SignalAccepted, personal: SealedSignal | None) -> list[Decision]:
        now = event.registered_at
        reg = Registration(
            registration_id=event.signal_id,
            subject=event.subject,
            organisation=event.organisation,
            organisation_category=event.organisation_category,
            worker=personal.worker if personal else _UNKNOWN,
            wijk=personal.wijk if personal else "WK000000",
            registered_at=event.registered_at,
            expires_at=expires_at(
                event.registered_at,
                month_start(event.age_limit_month),
                active_days=self.policy.retention.active_days,
            ),
            age_limit_from=month_start(event.age_limit_month),
        )
        self.registrations.setdefault(event.subject, []).append(reg)
        links = family_links(personal.parents, personal.household, self.policy) if personal else []
        merged: list[Decision] = []
        if links:
            nodes = [f"s:{event.subject}", *(f"l:{link}" for link in links)]
            before = {self.clusters.find(n) for n in nodes if n in self.clusters.parent}
            root = self.clusters.link(event.subject, links)
            merged = self._merge_family_matches(root, sorted(before - {root}))
        return merged + self.reconsider(event.subject, now)

    def _merge_family_matches(self, root: str, absorbed: list[str]) -> list[Decision]:
        """As the service does: one open family match stays (the oldest), under the root."""
        keys = [k for k in (root, *absorbed) if (MatchKind.FAMILY, k) in self.open_matches]
        if not keys:
            return []
        matches = sorted(
            (self.open_matches.pop((MatchKind.FAMILY, k)) for k in keys),
            key=lambda m: self.raised_order[m.match_id],
        )
        keep, *gone = matches
        self.open_matches[(MatchKind.FAMILY, root)] = OpenMatch(
            keep.match_id, MatchKind.FAMILY, root, keep.participants, keep.wijk
        )
        return [
            Dissolve(
                m.match_id,
                MatchKind.FAMILY,
                root,
                (),
                "family clusters merged (rule 4)",
                self.policy.version,
            )
            for m in gone
        ]


def decision_record(at: datetime, d: Decision) -> dict[str, Any]:
    record: dict[str, Any] = {
        "at": at.isoformat(),
        "decision": type(d).__name__.lower(),
        "kind": d.kind.value,
        "match_id": str(d.match_id),
        "rule": d.rule,
        "policy_version": d.policy_version,
    }
    regs: Iterable[Registration] = d.remaining if isinstance(d, Dissolve) else d.participants
    record["registrations"] = [str(r.registration_id) for r in regs]
    if isinstance(d, Join):
        record["newcomers"] = [str(r.registration_id) for r in d.newcomers]
    if isinstance(d, Leave):
        record["left"] = [str(i) for i in d.left]
    if isinstance(d, Transfer):
        record["coordination"] = "transferred"
    return record


async def replay(
    policy: Policy, events: list[SignalAccepted], open_sealed: Opener | None
) -> list[dict[str, Any]]:
    state = Replay(policy)
    out: list[dict[str, Any]] = []
    for event in events:
        for at, d in state.expire(event.registered_at):
            out.append(decision_record(at, d))
        personal = await open_sealed(event) if open_sealed else None
        if not policy.authorises(event.organisation_category):
            continue
        for d in state.add(event, personal):
            out.append(decision_record(event.registered_at, d))
    return out


def write_decisions(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n")

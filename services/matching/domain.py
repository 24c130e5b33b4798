"""Matching rules (BRIEF §3, rules 3-6 and 9): registrations, person and family matches,
their lifecycle, and the archive. Pure: no I/O; every number comes from the Policy.

A decision names the rule that fired, the policy version, and the registrations it
counted (ids, never content), so every match can be explained afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Protocol, TypeVar

from shared.contracts import MatchKind, OrganisationCategory, WithdrawalReason, WorkerContact
from shared.policy import Policy

# Decisions of the same inputs get the same ids, so a replay is byte-for-byte repeatable.
DECISION_NAMESPACE = uuid.UUID("2b7e1516-28ae-4d2a-a6ab-f7158809cf4f")


class EndReason(StrEnum):
    EXPIRED = "expired"  # the active period ran out: archived
    AGE_LIMIT = "age-limit"  # the 23rd birthday: gone, not archived
    WITHDRAWN_RESOLVED = "withdrawn-resolved"  # the risk is gone: archived
    WITHDRAWN_UNJUSTIFIED = "withdrawn-unjustified"  # not archived, shredded
    ERASED = "erased"  # not archived, shredded

    @property
    def archived(self) -> bool:
        return self in (EndReason.EXPIRED, EndReason.WITHDRAWN_RESOLVED)


def withdrawal_end(reason: WithdrawalReason, already: EndReason | None) -> EndReason | None:
    """Rule 5: how a worker's withdrawal ends a registration: resolved, it is archived;
    unjustified, it goes (and its subject's key with it when nothing else remains). None
    when it changes nothing: an archiving withdrawal of a registration already ended
    (an unjustified one still takes an archived registration out of the archive)."""
    end = (
        EndReason.WITHDRAWN_RESOLVED
        if reason is WithdrawalReason.RESOLVED
        else EndReason.WITHDRAWN_UNJUSTIFIED
    )
    return None if already is not None and end.archived else end


class Kept(Protocol):
    @property
    def partner_id(self) -> str | None: ...


K = TypeVar("K", bound=Kept)


def erased_at_partners_request(kept: Iterable[K], partner_id: str) -> list[K]:
    """A partner's erasure request ends that partner's own registrations of the subject,
    and no other organisation's: erasing those is the privacy officer's decision."""
    return [r for r in kept if r.partner_id == partner_id]


@dataclass(frozen=True)
class Registration:
    """One organisation's registered concern about one subject: never the reason."""

    registration_id: uuid.UUID
    subject: str
    organisation: str
    worker: WorkerContact
    wijk: str
    registered_at: datetime
    expires_at: datetime
    organisation_category: OrganisationCategory = OrganisationCategory.JEUGDHULP
    # The first day of the month the youth turns 23: the registration ends there. Only
    # the month leaves the partner; a day would be the date of birth shifted 23 years.
    age_limit_from: date | None = None
    ended_at: datetime | None = None
    end_reason: EndReason | None = None
    # The partner's own case number and its producer's number for this registration:
    # passed on (sealed) to that organisation's workers only, never matched on.
    reference: str | None = None
    partner_registration: uuid.UUID | None = None

    def is_active(self, now: datetime) -> bool:
        # No lower bound: a partner clock a little ahead must not hide a registration.
        return self.end_reason is None and now < self.expires_at

    def ended(self, reason: EndReason, at: datetime) -> Registration:
        return replace(self, ended_at=at, end_reason=reason)


def expires_at(registered_at: datetime, age_limit_from: date, *, active_days: int) -> datetime:
    """A registration ends after the active period or at the start of the month the youth
    turns 23, whichever first (rule 5, to the month: never on or after the birthday)."""
    cutoff = datetime.combine(age_limit_from, time.min, tzinfo=UTC)
    return min(registered_at + timedelta(days=active_days), cutoff)


def over_age(age_limit_from: date, registered_at: datetime) -> bool:
    """Rule 5: a youth who reached the age limit in or before the month of registration
    is not registered (nor linked to a family): the registration would have ended."""
    return age_limit_from <= registered_at.date().replace(day=1)


def end_reason_at(reg: Registration, now: datetime) -> EndReason | None:
    """Why an active registration has ended by `now`, if it has (for the retention job)."""
    if reg.end_reason is not None or now < reg.expires_at:
        return None
    if reg.age_limit_from is not None and reg.expires_at >= datetime.combine(
        reg.age_limit_from, time.min, tzinfo=UTC
    ):
        return EndReason.AGE_LIMIT
    return EndReason.EXPIRED


def archive_until(reg: Registration, policy: Policy) -> datetime | None:
    """How long an ended registration stays in the archive: 5 years, never past 23."""
    if reg.end_reason is None or not reg.end_reason.archived or reg.ended_at is None:
        return None
    until = reg.ended_at + timedelta(days=365 * policy.retention.archive_years)
    if reg.age_limit_from is not None:
        until = min(until, datetime.combine(reg.age_limit_from, time.min, tzinfo=UTC))
    return until if until > reg.ended_at else None


@dataclass(frozen=True)
class OpenMatch:
    match_id: uuid.UUID
    kind: MatchKind
    key: str  # the subject of a person match, the family cluster of a family match
    participants: frozenset[uuid.UUID]
    wijk: str


@dataclass(frozen=True)
class Raise:
    match_id: uuid.UUID
    kind: MatchKind
    key: str
    participants: tuple[Registration, ...]
    wijk: str
    rule: str
    policy_version: str


@dataclass(frozen=True)
class Join:
    match_id: uuid.UUID
    kind: MatchKind
    key: str
    newcomers: tuple[Registration, ...]
    participants: tuple[Registration, ...]
    rule: str
    policy_version: str


@dataclass(frozen=True)
class Dissolve:
    match_id: uuid.UUID
    kind: MatchKind
    key: str
    remaining: tuple[Registration, ...]
    rule: str
    policy_version: str


@dataclass(frozen=True)
class Transfer:
    match_id: uuid.UUID
    kind: MatchKind
    key: str
    from_wijk: str
    to_wijk: str
    participants: tuple[Registration, ...]
    rule: str
    policy_version: str


@dataclass(frozen=True)
class Leave:
    """Registrations that ended while the match goes on without them: their workers are
    no longer party to it."""

    match_id: uuid.UUID
    kind: MatchKind
    key: str
    left: tuple[uuid.UUID, ...]
    participants: tuple[Registration, ...]
    rule: str
    policy_version: str


Decision = Raise | Join | Dissolve | Transfer | Leave


def counted(
    registrations: Iterable[Registration], policy: Policy, now: datetime
) -> list[Registration]:
    """The active registrations a rule counts, oldest first: all of them when the policy
    lets one organisation count more than once, else the newest per organisation and
    subject."""
    active = sorted(
        (r for r in registrations if r.is_active(now)),
        key=lambda r: (r.registered_at, str(r.registration_id)),
    )
    if policy.matching.same_organisation_counts:
        return active
    newest: dict[tuple[str, str], Registration] = {}
    for reg in active:
        newest[(reg.subject, reg.organisation)] = reg
    return sorted(newest.values(), key=lambda r: (r.registered_at, str(r.registration_id)))


def _qualifies(regs: Sequence[Registration], kind: MatchKind, policy: Policy) -> bool:
    n = policy.matching.min_organisations
    enough = (
        len(regs) >= n
        if policy.matching.same_organisation_counts
        else len({r.organisation for r in regs}) >= n
    )
    if kind is MatchKind.FAMILY:
        return enough and len({r.subject for r in regs}) >= 2
    return enough


def rule_text(kind: MatchKind, policy: Policy) -> str:
    n = policy.matching.min_organisations
    what = "registrations" if policy.matching.same_organisation_counts else "organisations"
    if kind is MatchKind.FAMILY:
        return f"family-match: >= 2 children of one family, >= {n} {what} (rule 4)"
    return f"person-match: >= {n} active {what} on one subject (rule 3)"


def match_id_for(kind: MatchKind, key: str, participants: Sequence[Registration]) -> uuid.UUID:
    """Derived from what raised it: a match that dissolved and arises again with another
    set of registrations is a new match."""
    ids = ",".join(sorted(str(r.registration_id) for r in participants))
    return uuid.uuid5(DECISION_NAMESPACE, f"{kind.value}/{key}/{ids}")


def decide(
    kind: MatchKind,
    key: str,
    registrations: Iterable[Registration],
    open_match: OpenMatch | None,
    policy: Policy,
    now: datetime,
) -> list[Decision]:
    """What happens to the match of `key` given its registrations now."""
    registrations = list(registrations)
    regs = counted(registrations, policy, now)
    rule = rule_text(kind, policy)
    version = policy.version
    if not _qualifies(regs, kind, policy):
        if open_match is None:
            return []
        return [Dissolve(open_match.match_id, kind, key, tuple(regs), rule, version)]
    if open_match is None:
        return [
            Raise(
                match_id_for(kind, key, regs),
                kind,
                key,
                tuple(regs),
                regs[-1].wijk,
                rule,
                version,
            )
        ]
    decisions: list[Decision] = []
    active = {r.registration_id for r in registrations if r.is_active(now)}
    left = tuple(sorted(open_match.participants - active))
    if left:
        decisions.append(Leave(open_match.match_id, kind, key, left, tuple(regs), rule, version))
    newcomers = tuple(r for r in regs if r.registration_id not in open_match.participants)
    if newcomers:
        decisions.append(
            Join(open_match.match_id, kind, key, newcomers, tuple(regs), rule, version)
        )
        latest = newcomers[-1]
        if latest.wijk != open_match.wijk:
            decisions.append(
                Transfer(
                    open_match.match_id,
                    kind,
                    key,
                    open_match.wijk,
                    latest.wijk,
                    tuple(regs),
                    "coordination follows the newest registration's wijk (rule 9)",
                    version,
                )
            )
    return decisions


@dataclass
class FamilyClusters:
    """Union-find over subjects and their family links (parent and household pseudonyms).

    The cluster id is the smallest member, so it does not depend on arrival order.
    """

    parent: dict[str, str] = field(default_factory=dict)

    def find(self, node: str) -> str:
        self.parent.setdefault(node, node)
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, nodes: Sequence[str]) -> str:
        roots = sorted({self.find(n) for n in nodes})
        for other in roots[1:]:
            self.parent[other] = roots[0]
        return roots[0]

    def link(self, subject: str, links: Iterable[str]) -> str:
        return self.union([f"s:{subject}", *(f"l:{link}" for link in links)])

    def members(self, root: str) -> set[str]:
        return {
            node[2:]
            for node in list(self.parent)
            if node.startswith("s:") and self.find(node) == root
        }


def family_links(parents: Sequence[str], household: str | None, policy: Policy) -> list[str]:
    """The links the policy lets form a family: shared parents and/or a shared household."""
    if not policy.matching.family.enabled:
        return []
    links: list[str] = []
    if "parent" in policy.matching.family.links:
        links.extend(f"parent:{p}" for p in parents)
    if "household" in policy.matching.family.links and household:
        links.append(f"household:{household}")
    return links

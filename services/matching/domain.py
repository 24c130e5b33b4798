"""Matching rules (BRIEF §3): registration lifetime and the person match. Pure: no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from shared.contracts import MatchKind, WorkerContact

PERSON_MATCH_RULE = "person-match: >= {n} active registrations by >= {n} organisations"


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

    def is_active(self, now: datetime) -> bool:
        # No lower bound: a partner clock a little ahead must not hide a registration.
        return now < self.expires_at


def expires_at(registered_at: datetime, age_cutoff: date, *, active_days: int) -> datetime:
    """A registration ends after the active period or at the 23rd birthday, whichever first."""
    cutoff = datetime.combine(age_cutoff, time.min, tzinfo=UTC)
    return min(registered_at + timedelta(days=active_days), cutoff)


@dataclass(frozen=True)
class MatchDecision:
    """Why a match is raised: the rule, the policy version and the registrations counted."""

    match_id: uuid.UUID
    kind: MatchKind
    subject: str
    wijk: str
    rule: str
    policy_version: str
    participants: tuple[Registration, ...]


def decide_person_match(
    registrations: Sequence[Registration],
    *,
    now: datetime,
    open_match: bool,
    min_organisations: int,
    policy_version: str,
) -> MatchDecision | None:
    """Raise a person match when enough distinct organisations actively registered the subject.

    The newest active registration of each organisation is counted; nothing is raised when
    the subject already has an open match.
    """
    if open_match:
        return None
    newest: dict[str, Registration] = {}
    for reg in sorted(registrations, key=lambda r: r.registered_at):
        if reg.is_active(now):
            newest[reg.organisation] = reg
    if len(newest) < min_organisations:
        return None
    latest = max(newest.values(), key=lambda r: r.registered_at)
    return MatchDecision(
        match_id=uuid.uuid4(),
        kind=MatchKind.PERSON,
        subject=latest.subject,
        wijk=latest.wijk,
        rule=PERSON_MATCH_RULE.format(n=min_organisations),
        policy_version=policy_version,
        participants=tuple(sorted(newest.values(), key=lambda r: r.registered_at)),
    )

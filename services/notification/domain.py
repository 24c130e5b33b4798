"""Who is told what about a match, and when it escalates (BRIEF §3 rules 7-10).
Pure: no I/O; every period and age comes from the Policy.

An alert carries *that* information only: whom to contact and how, never why. A family
match says no more than "another child in the same family".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from shared.contracts import (
    AGE_LIMIT_MONTH_AGE,
    MatchContact,
    MatchKind,
    OrganisationCategory,
    WorkerContact,
    month_start,
)
from shared.policy import DigestPolicy, Policy

# Alerts are identified by (match, recipient, kind, occasion), so a redelivered event
# yields the same alert ids and storing them again is a no-op.
NL = ZoneInfo("Europe/Amsterdam")
ALERT_NAMESPACE = uuid.UUID("5f0b8a4e-3c1d-4e0a-9a57-6d1f2b7c9e10")


class Part(StrEnum):
    """Why a recipient is told."""

    REGISTRANT = "registrant"  # a worker whose registration is part of the match
    COORDINATOR = "coordinator"  # the matchregisseur
    REGIE = "regie"  # the municipality's regie role


MESSAGES = {
    (MatchKind.PERSON, "raised"): "Another organisation is also concerned about a youth "
    "you registered. Contact each other.",
    (MatchKind.FAMILY, "raised"): "This concerns another child in the same family. "
    "Contact each other.",
    (MatchKind.PERSON, "joined"): "Another organisation joined a match you are part of.",
    (MatchKind.FAMILY, "joined"): "Another organisation joined a family match you are part "
    "of; it concerns another child in the same family.",
    "coordinator": "You are the coordinator (matchregisseur) of this match.",
    "unassigned": "A match was raised and no coordinator could be assigned: the wijk's team "
    "has no eligible worker on the roster. Assign one (vroegsignaal roster).",
    "transferred": "Coordination of this match moved to another team.",
    "reassigned": "This match has a new coordinator (matchregisseur).",
    "dissolved": "This match has ended: the registrations no longer match.",
    "earlier": "Earlier involvement: these organisations were involved with this youth "
    "before (archived).",
}


def _key(name: object) -> str:
    if isinstance(name, tuple):
        kind, occasion = name
        return f"alert.{kind.value}.{occasion}"
    return f"alert.{name}"


# The stored message of an alert (English, as it was issued), and the key of its text in
# the pages' message catalogues, so a page shows it in its user's language.
_KEYS = {text: _key(name) for name, text in MESSAGES.items()} | {
    f"{MESSAGES['coordinator']} {MESSAGES[(kind, 'raised')]}": f"alert.coordinator.{kind.value}"
    for kind in MatchKind
}


# Messages of alerts no longer issued, still in inboxes from before: the regie role's
# alert per match, and the escalations that are now lines of an overview (Overdue).
_KEYS["A match was raised; follow whether contact is made."] = "alert.regie"
_KEYS["Escalation: an alert in your team was not acknowledged in time."] = "alert.unacknowledged"
_KEYS["Escalation: no contact was recorded for this match in time."] = "alert.no-contact"


def message_key(message: str) -> tuple[str, dict[str, str]] | None:
    """The catalogue key of an alert's message and its parameters (the organisations of
    an earlier-involvement notice); None for a message from before the catalogues."""
    if message in _KEYS:
        return _KEYS[message], {}
    earlier = MESSAGES["earlier"]
    if message.startswith(f"{earlier} "):
        return "alert.earlier", {"organisations": message.removeprefix(f"{earlier} ")}
    return None


def alert_id(
    match_id: uuid.UUID | None, recipient_id: str, kind: MatchKind, occasion: str
) -> uuid.UUID:
    return uuid.uuid5(ALERT_NAMESPACE, f"{match_id}/{recipient_id}/{kind.value}/{occasion}")


@dataclass(frozen=True)
class Alert:
    """That information, never what: whom to contact about a match."""

    alert_id: uuid.UUID
    match_id: uuid.UUID | None
    kind: MatchKind
    occasion: str
    part: Part
    recipient: WorkerContact
    contacts: tuple[WorkerContact, ...]
    coordinator: WorkerContact | None
    message: str


@dataclass(frozen=True)
class About:
    """Whose data an alert or a read of a match discloses, for the access report of each:
    a registering worker's alert is about the children that worker registered (in a
    family match a sibling's worker is not listed in another child's report); the
    coordinator's, the regie's and a read of the whole match about every child in it."""

    subjects: tuple[str, ...] = ()
    by_worker: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of_parties(cls, parties: Iterable[tuple[str, str | None]]) -> About:
        """From (worker id, subject) per registration of a match."""
        by_worker: dict[str, set[str]] = {}
        for worker_id, subject in parties:
            if subject is not None:
                by_worker.setdefault(worker_id, set()).add(subject)
        return cls(
            tuple(sorted(set().union(*by_worker.values()))),
            {w: tuple(sorted(s)) for w, s in by_worker.items()},
        )

    def of(self, alert: Alert) -> list[str]:
        if alert.part is Part.REGISTRANT:
            return list(self.by_worker.get(alert.recipient.worker_id, ()))
        return list(self.subjects)


@dataclass(frozen=True)
class TeamWorker:
    worker_id: str
    category: OrganisationCategory
    active: bool
    open_matches: int


def choose_coordinator(
    family_coordinator: TeamWorker | None,
    team: Sequence[TeamWorker],
    policy: Policy,
) -> str | None:
    """The coordinator (matchregisseur) of a new match, by a stated rule:

    1. the family's existing coordinator, while active and of a coordinating category;
    2. else the active worker of the wijk's team, of a coordinating category, with the
       fewest open matches to coordinate; ties go to the lowest worker id.

    Categories the policy excludes (schools, police, childcare) are never chosen.
    None when the team has no one eligible (the regie role is told to assign one)."""

    def eligible(w: TeamWorker) -> bool:
        return w.active and w.category in policy.coordinating_categories

    if family_coordinator is not None and eligible(family_coordinator):
        return family_coordinator.worker_id
    candidates = sorted(
        (w for w in team if eligible(w)), key=lambda w: (w.open_matches, w.worker_id)
    )
    return candidates[0].worker_id if candidates else None


def registrants(contacts: Iterable[MatchContact]) -> dict[str, WorkerContact]:
    """The distinct workers behind a match's registrations, in order."""
    workers: dict[str, WorkerContact] = {}
    for c in contacts:
        workers.setdefault(c.worker.worker_id, c.worker)
    return workers


def alerts_for_match(
    match_id: uuid.UUID,
    kind: MatchKind,
    contacts: Sequence[MatchContact],
    coordinator: WorkerContact | None,
    regie: Sequence[WorkerContact],
    occasion: str = "raised",
) -> list[Alert]:
    """A new match: every registering worker learns whom to contact (the other workers
    and the coordinator), the coordinator learns of every worker. The regie role follows
    matches in its overview, not an alert per match: it is told only of a match no
    coordinator could be assigned to, which waits for it to act."""
    workers = registrants(contacts)
    message = MESSAGES[(kind, "raised")]
    alerts = [
        Alert(
            alert_id(match_id, wid, kind, occasion),
            match_id,
            kind,
            occasion,
            Part.REGISTRANT,
            worker,
            tuple(w for other, w in workers.items() if other != wid),
            coordinator,
            message,
        )
        for wid, worker in workers.items()
    ]
    if coordinator is not None and coordinator.worker_id not in workers:
        alerts.append(
            Alert(
                alert_id(match_id, coordinator.worker_id, kind, occasion),
                match_id,
                kind,
                occasion,
                Part.COORDINATOR,
                coordinator,
                tuple(workers.values()),
                coordinator,
                f"{MESSAGES['coordinator']} {message}",
            )
        )
    alerts += [
        Alert(
            alert_id(match_id, r.worker_id, kind, occasion),
            match_id,
            kind,
            occasion,
            Part.REGIE,
            r,
            (),
            coordinator,
            MESSAGES["unassigned"],
        )
        for r in regie
        if r.worker_id not in workers and coordinator is None
    ]
    return alerts


def alerts_for_join(
    match_id: uuid.UUID,
    kind: MatchKind,
    contacts: Sequence[MatchContact],
    newcomers: set[uuid.UUID],
    coordinator: WorkerContact | None,
) -> list[Alert]:
    """A newcomer learns whom to contact; everyone already involved (the coordinator
    included) learns of the newcomer."""
    occasion = "joined:" + ",".join(sorted(str(i) for i in newcomers))
    workers = registrants(contacts)
    fresh = registrants(c for c in contacts if c.registration_id in newcomers)
    involved = dict(workers)
    if coordinator is not None:
        involved.setdefault(coordinator.worker_id, coordinator)
    alerts = []
    for wid, recipient in involved.items():
        if wid in fresh:
            others = tuple(w for other, w in workers.items() if other != wid)
        else:
            others = tuple(w for other, w in fresh.items() if other != wid)
        if others:
            part = Part.REGISTRANT if wid in workers else Part.COORDINATOR
            alerts.append(
                Alert(
                    alert_id(match_id, wid, kind, occasion),
                    match_id,
                    kind,
                    occasion,
                    part,
                    recipient,
                    others,
                    coordinator,
                    MESSAGES[(kind, "joined")],
                )
            )
    return alerts


def alerts_to_all(
    match_id: uuid.UUID,
    kind: MatchKind,
    recipients: Sequence[tuple[WorkerContact, Part]],
    occasion: str,
    message: str,
    coordinator: WorkerContact | None,
) -> list[Alert]:
    """One notice to each distinct recipient (a transfer or the end of a match)."""
    seen: set[str] = set()
    alerts = []
    for recipient, part in recipients:
        if recipient.worker_id in seen:
            continue
        seen.add(recipient.worker_id)
        alerts.append(
            Alert(
                alert_id(match_id, recipient.worker_id, kind, occasion),
                match_id,
                kind,
                occasion,
                part,
                recipient,
                (coordinator,) if coordinator and coordinator != recipient else (),
                coordinator,
                message,
            )
        )
    return alerts


def transfer_alerts(
    match_id: uuid.UUID,
    kind: MatchKind,
    transfer_id: uuid.UUID,
    parties: Sequence[WorkerContact],
    before: WorkerContact | None,
    after: WorkerContact | None,
    regie: Sequence[WorkerContact],
) -> list[Alert]:
    """Rule 9: when coordination moves, everyone involved hears of it once: the match's
    workers, the coordinator it had and the one it has now, and the regie role."""
    recipients = [(w, Part.REGISTRANT) for w in parties]
    recipients += [(c, Part.COORDINATOR) for c in (before, after) if c is not None]
    recipients += [(r, Part.REGIE) for r in regie]
    return alerts_to_all(
        match_id, kind, recipients, f"transferred:{transfer_id}", MESSAGES["transferred"], after
    )


class OverdueKind(StrEnum):
    UNACKNOWLEDGED = "unacknowledged"  # an alert nobody acknowledged in time
    NO_CONTACT = "no-contact"  # a match without contact in time


@dataclass(frozen=True)
class Overdue:
    """A line of a team lead's or the regie role's overview, and a count in their next
    digest e-mail: what is past its period, not an alert per match. The overview names
    whom to chase; the item itself only points at the late alert or the quiet match."""

    item_id: uuid.UUID
    kind: OverdueKind
    recipient: WorkerContact
    match_id: uuid.UUID
    alert_id: uuid.UUID | None


def _overdue(
    kind: OverdueKind, recipient: WorkerContact, match_id: uuid.UUID, late_alert: uuid.UUID | None
) -> Overdue:
    what = late_alert or match_id
    return Overdue(
        uuid.uuid5(ALERT_NAMESPACE, f"overdue/{kind.value}/{what}/{recipient.worker_id}"),
        kind,
        recipient,
        match_id,
        late_alert,
    )


def regie_oversees(active_leads: int) -> bool:
    """Whose overview a team's late alerts are on: its team leads'; the regie role's when
    the team has no active lead (then, and only then)."""
    return active_leads == 0


def unacknowledged_overdue(
    late_alert: uuid.UUID,
    match_id: uuid.UUID,
    leads: Sequence[WorkerContact],
    regie: Sequence[WorkerContact],
) -> list[Overdue]:
    """An alert nobody acknowledged in time goes on the overview of the match's team
    leads (the regie role's when the team has none); once per late alert."""
    to = list(regie) if regie_oversees(len(leads)) else list(leads)
    return [_overdue(OverdueKind.UNACKNOWLEDGED, who, match_id, late_alert) for who in to]


def still_overdue(
    kind: OverdueKind, *, match_open: bool, acknowledged: bool, contact_made: bool
) -> bool:
    """An overview's item stays (and is counted in its reader's next digest) until what
    it is about is followed up: its late alert acknowledged, contact made in its quiet
    match, or the match closed."""
    if not match_open:
        return False
    return not acknowledged if kind is OverdueKind.UNACKNOWLEDGED else not contact_made


def waiting_for_recipient(unread_alerts: int, open_tasks: int) -> bool:
    """A case waits for its recipient (the inbox's "waiting for me") while one of their
    alerts of it is unread or one of their tasks in it (informing a youth or parents) is
    not done."""
    return unread_alerts > 0 or open_tasks > 0


def no_contact_overdue(match_id: uuid.UUID, regie: Sequence[WorkerContact]) -> list[Overdue]:
    """A match without contact in time goes on the regie role's overview, which names
    whom to chase: the coordinator, or the workers when there is none (rule 11: no more
    than that)."""
    return [_overdue(OverdueKind.NO_CONTACT, who, match_id, None) for who in regie]


def keeps_coordinator(
    old_team: str | None, new_team: str | None, coordinator: WorkerContact | None
) -> bool:
    """Rule 9: a move within the team's own wijken keeps the coordinator; a move to
    another team's wijk hands coordination to that team."""
    return coordinator is not None and old_team == new_team


def ages_on(age_limit_month: str, on: date) -> frozenset[int]:
    """The youth's possible ages in whole years on `on`, known only from the month they
    turn 23 (whatever age limit a policy sets): one age, or two in their birthday month
    (before or after)."""
    limit = month_start(age_limit_month)
    born_year = limit.year - AGE_LIMIT_MONTH_AGE
    if on.month == limit.month:
        return frozenset({on.year - born_year - 1, on.year - born_year})
    return frozenset({on.year - born_year - (on.month < limit.month)})


def informing_addressee(contact: MatchContact, on: date, policy: Policy) -> str:
    """Rule 10. Without a known age, or in a birthday month that crosses an age band's
    boundary, the worker informs both youth and parents: the band that covers either."""
    if contact.age_limit_month is None:
        return "youth and parents"
    addressees = {policy.informing_addressee(age) for age in ages_on(contact.age_limit_month, on)}
    return addressees.pop() if len(addressees) == 1 else "youth and parents"


@lru_cache(maxsize=8)
def _holidays(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("NL", years=year)


def is_working_day(day: date) -> bool:
    """Monday to Friday, except Dutch public holidays."""
    return day.weekday() < 5 and day not in _holidays(day.year)


def add_working_days(start: datetime, days: int) -> datetime:
    """The moment `days` working days after `start` (same time of day), counted in the
    Netherlands' own days, whatever the zone `start` is given in."""
    moment = start.astimezone(NL)
    left = days
    while left > 0:
        moment += timedelta(days=1)
        if is_working_day(moment.date()):
            left -= 1
    return moment.astimezone(start.tzinfo)


def overdue(since: datetime, working_days: int, now: datetime) -> bool:
    return now >= add_working_days(since, working_days)


def digest_due(
    last_sent: datetime | None,
    new_case: bool,
    now: datetime,
    policy: DigestPolicy,
    *,
    unsent: bool = False,
) -> bool:
    """Whether a worker with alerts waiting gets their digest e-mail now: at most one per
    interval; the first alert of a case new to them sooner, if the policy says so, but
    never within min_gap of their last e-mail. A worker never e-mailed before is told
    at once. While their last e-mail is `unsent` (the relay is down), none: a recovered
    relay sends one, not one per interval of the outage."""
    if unsent:
        return False
    if last_sent is None:
        return True
    since = now - last_sent
    if since >= timedelta(minutes=policy.interval_minutes):
        return True
    return (
        new_case
        and policy.new_case_immediately
        and since >= timedelta(minutes=policy.min_gap_minutes)
    )


def forgotten_when_key_is_gone(kind: MatchKind) -> bool:
    """A person match's key is its subject's: when it is gone the subject was erased and
    the match is forgotten. A family match's key is replaced when one child is erased:
    the match goes on for the siblings, under the new key."""
    return kind is MatchKind.PERSON

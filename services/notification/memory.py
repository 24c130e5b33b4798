"""Notification's repository in memory: the same contract as PostgreSQL's
(tests/notification_repository_contract.py runs one suite over both), for tests of the
use cases. One process, one task: locks are not needed and not taken.

PostgreSQL's side reads rows that other parts of the service write: the roster (loaded
from its file), acknowledgements, contacts made and completed tasks (the inbox), digests
and the state of their e-mails (the delivery loop). Here they are set with the methods
under "what others write", each mirroring the table or store function it stands for."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from services.notification.domain import About, Alert, Overdue, OverdueKind, Part, TeamWorker
from services.notification.ports import KnownMatch, LateAlert, QuietMatch
from shared.contracts import MatchContact, MatchKind, OrganisationCategory, WorkerContact

ROLES = ("worker", "team_lead", "regie")
CHANNELS = ("email", "webhook")
DELIVERY_STATES = ("pending", "sent", "dead")


@dataclass
class _Match:
    kind: str
    subject: str | None
    family: str | None
    wijk: str
    team_id: str | None
    coordinator_id: str | None
    raised_at: datetime
    state: str = "open"
    closed_at: datetime | None = None
    contact_made_at: datetime | None = None
    escalated_at: datetime | None = None


@dataclass
class _Party:
    worker: WorkerContact
    organisation: str
    subject: str | None
    yours: str | None


@dataclass
class _Alert:
    alert: Alert  # its contacts lose the workers of an erased child
    subjects: list[str]
    organisation: str | None
    issued_at: datetime
    acknowledged_at: datetime | None = None
    escalated_at: datetime | None = None


@dataclass
class _Task:
    match_id: uuid.UUID
    registration_id: uuid.UUID
    worker_id: str
    addressee: str
    created_at: datetime
    done_at: datetime | None = None


@dataclass
class _Delivery:
    alert_id: uuid.UUID | None
    digest_id: uuid.UUID | None
    channel: str
    target: str
    state: str = "pending"


@dataclass
class _Digest:
    recipient_id: str
    created_at: datetime


@dataclass
class _DigestItem:
    recipient_id: str
    target: str
    match_id: uuid.UUID | None
    new_case: bool
    queued_at: datetime
    digest_id: uuid.UUID | None = None


@dataclass
class _OverdueItem:
    kind: OverdueKind
    recipient_id: str
    target: str
    match_id: uuid.UUID
    alert_id: uuid.UUID | None
    queued_at: datetime
    digest_id: uuid.UUID | None = None


@dataclass
class _Trend:
    children: int
    trend: bool


@dataclass
class _Member:
    contact: WorkerContact
    team_id: str | None
    role: str
    category: OrganisationCategory
    active: bool


@dataclass
class _Parked:
    match_id: uuid.UUID
    kind: str
    payload: bytes


def utc_now() -> datetime:
    return datetime.now(UTC)


class InMemoryRepository:
    """ports.NotificationRepository in memory. `clock` stamps what PostgreSQL stamps with
    now(): when an alert was issued, a task set, an item queued. A row whose parent is
    not kept (a party of an unknown match, a delivery of an unknown alert) is refused
    with a KeyError, as PostgreSQL's foreign keys refuse it."""

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self.clock = clock
        self.matches: dict[uuid.UUID, _Match] = {}
        self.parties_: dict[tuple[uuid.UUID, uuid.UUID], _Party] = {}
        self.alerts: dict[uuid.UUID, _Alert] = {}
        self.contacts_made: dict[tuple[uuid.UUID, str, str], datetime] = {}
        self.tasks: dict[uuid.UUID, _Task] = {}
        self.deliveries: dict[uuid.UUID, _Delivery] = {}
        self.digests: dict[uuid.UUID, _Digest] = {}
        self.digest_items: dict[uuid.UUID, _DigestItem] = {}  # by alert
        self.overdue_items: dict[uuid.UUID, _OverdueItem] = {}
        self.pending: dict[uuid.UUID, _Parked] = {}  # in arrival order
        self.forgotten_ids: set[uuid.UUID] = set()
        self.trends: dict[tuple[str, str, str], _Trend] = {}
        self.teams: dict[str, str] = {}  # team id -> name
        self.wijken: dict[str, str] = {}  # wijk -> team id
        self.members: dict[str, _Member] = {}
        self.told_live: list[str] = []  # PostgreSQL's pg_notify, in order

    # --- serialising ------------------------------------------------------------------

    async def lock_match(self, match_id: uuid.UUID) -> None:
        return None

    async def lock_assignment(self, team_id: str) -> None:
        return None

    # --- matches and their parties ----------------------------------------------------

    def _known_match(self, match_id: uuid.UUID) -> _Match:
        found = self.matches.get(match_id)
        if found is None:
            raise KeyError(f"no match {match_id} is kept")
        return found

    def _known_alert(self, alert_id: uuid.UUID) -> _Alert:
        found = self.alerts.get(alert_id)
        if found is None:
            raise KeyError(f"no alert {alert_id} is kept")
        return found

    def _as_known(self, match_id: uuid.UUID, m: _Match) -> KnownMatch:
        return KnownMatch(
            match_id, MatchKind(m.kind), m.family, m.wijk, m.team_id, m.coordinator_id
        )

    async def match(self, match_id: uuid.UUID) -> KnownMatch | None:
        m = self.matches.get(match_id)
        return self._as_known(match_id, m) if m is not None else None

    async def add_match(
        self,
        *,
        match_id: uuid.UUID,
        kind: str,
        subject: str | None,
        family: str | None,
        wijk: str,
        team_id: str | None,
        coordinator_id: str | None,
        raised_at: datetime,
    ) -> bool:
        if match_id in self.matches:
            return False
        self.matches[match_id] = _Match(
            kind, subject, family, wijk, team_id, coordinator_id, raised_at
        )
        return True

    async def add_parties(
        self,
        match_id: uuid.UUID,
        contacts: Sequence[MatchContact],
        yours: Mapping[uuid.UUID, str] | None = None,
    ) -> None:
        for c in contacts:
            self._known_match(match_id)
            seen = (yours or {}).get(c.registration_id)
            kept = self.parties_.get((match_id, c.registration_id))
            if kept is not None:
                # A party stored before its organisation's view existed gets it later;
                # one already there stays as it is.
                if kept.yours is None:
                    kept.yours = seen
                continue
            self.parties_[(match_id, c.registration_id)] = _Party(
                c.worker, c.organisation, c.subject, seen
            )

    def _parties_of(self, match_id: uuid.UUID) -> list[tuple[uuid.UUID, _Party]]:
        return [(r, p) for (m, r), p in self.parties_.items() if m == match_id]

    async def parties(self, match_id: uuid.UUID) -> list[tuple[WorkerContact, str]]:
        # PostgreSQL's DISTINCT ON (worker_id) gives one row of each worker, which one
        # unspecified; here the first stored.
        first: dict[str, _Party] = {}
        for _, p in self._parties_of(match_id):
            first.setdefault(p.worker.worker_id, p)
        return [(first[w].worker, first[w].organisation) for w in sorted(first)]

    async def drop_parties(self, match_id: uuid.UUID, registrations: Sequence[uuid.UUID]) -> int:
        leaving = set(registrations)
        for task_id in [
            i
            for i, t in self.tasks.items()
            if t.match_id == match_id and t.registration_id in leaving and t.done_at is None
        ]:
            del self.tasks[task_id]
        dropped = [(match_id, r) for r in leaving if (match_id, r) in self.parties_]
        for key in dropped:
            del self.parties_[key]
        return len(dropped)

    async def about(self, match_id: uuid.UUID) -> About:
        return About.of_parties(
            (p.worker.worker_id, p.subject) for _, p in self._parties_of(match_id)
        )

    async def about_many(self, match_ids: Sequence[uuid.UUID]) -> list[str]:
        wanted = set(match_ids)
        return sorted(
            {
                p.subject
                for (m, _), p in self.parties_.items()
                if m in wanted and p.subject is not None
            }
        )

    async def close_match(self, match_id: uuid.UUID, at: datetime) -> bool:
        m = self.matches.get(match_id)
        if m is None or m.state != "open":
            return False
        m.state, m.closed_at = "closed", at
        return True

    async def reassign(
        self,
        match_id: uuid.UUID,
        *,
        wijk: str,
        team_id: str | None,
        coordinator_id: str | None,
    ) -> None:
        if (m := self.matches.get(match_id)) is not None:
            m.wijk, m.team_id, m.coordinator_id = wijk, team_id, coordinator_id

    async def family_coordinator(self, family: str | None) -> str | None:
        if family is None:
            return None
        coordinated = sorted(
            (m.raised_at, m.coordinator_id)
            for m in self.matches.values()
            if m.family == family and m.state == "open" and m.coordinator_id is not None
        )
        return coordinated[0][1] if coordinated else None

    async def member(self, user_id: str) -> TeamWorker | None:
        found = self.members.get(user_id)
        if found is None:
            return None
        return TeamWorker(user_id, found.category, found.active, 0)

    async def team_workers(self, team_id: str) -> list[TeamWorker]:
        return [
            TeamWorker(
                user_id,
                m.category,
                m.active,
                sum(
                    1
                    for x in self.matches.values()
                    if x.coordinator_id == user_id and x.state == "open"
                ),
            )
            for user_id, m in self.members.items()
            if m.team_id == team_id and m.role == "worker"
        ]

    async def orphaned(self) -> list[KnownMatch]:
        def gone(coordinator_id: str | None) -> bool:
            if coordinator_id is None:
                return True
            # PostgreSQL's `NOT c.active` of a coordinator not on the roster is NULL:
            # such a match is not orphaned.
            found = self.members.get(coordinator_id)
            return found is not None and not found.active

        found = sorted(
            (m.raised_at, i)
            for i, m in self.matches.items()
            if m.state == "open" and m.team_id is not None and gone(m.coordinator_id)
        )
        return [self._as_known(i, self.matches[i]) for _, i in found[:200]]

    # --- events that overtook their match, and forgetting ------------------------------

    async def park(
        self, event_id: uuid.UUID, match_id: uuid.UUID, kind: str, payload: bytes
    ) -> None:
        self.pending.setdefault(event_id, _Parked(match_id, kind, payload))

    async def parked(self, match_id: uuid.UUID) -> list[tuple[str, bytes]]:
        taken = [i for i, p in self.pending.items() if p.match_id == match_id]
        return [(p.kind, p.payload) for p in (self.pending.pop(i) for i in taken)]

    async def forget_match_id(self, match_id: uuid.UUID) -> None:
        self.forgotten_ids.add(match_id)
        await self.parked(match_id)

    async def forgotten(self, match_id: uuid.UUID) -> bool:
        return match_id in self.forgotten_ids

    async def matches_of(self, subject: str) -> list[uuid.UUID]:
        return sorted(
            {i for i, m in self.matches.items() if m.subject == subject}
            | {m for (m, _), p in self.parties_.items() if p.subject == subject}
        )

    def _delete_alerts(self, alert_ids: Iterable[uuid.UUID]) -> int:
        """Alerts go with their deliveries, digest items and overdue items."""
        gone = {i for i in set(alert_ids) if self.alerts.pop(i, None) is not None}
        self.deliveries = {i: d for i, d in self.deliveries.items() if d.alert_id not in gone}
        self.digest_items = {i: d for i, d in self.digest_items.items() if i not in gone}
        self.overdue_items = {i: o for i, o in self.overdue_items.items() if o.alert_id not in gone}
        return len(gone)

    async def forget_subject(
        self, subject: str, registrations: Sequence[uuid.UUID]
    ) -> tuple[int, int]:
        match_ids = [
            i for i, m in self.matches.items() if m.subject == subject and m.kind == "person"
        ]
        alerts = await self.forget_matches(match_ids)
        alerts += self._delete_alerts(
            i for i, a in self.alerts.items() if subject in a.subjects and a.alert.match_id is None
        )
        # Family matches go on for the siblings, without this child (see
        # store/forgetting.forget_subject, whose steps these are).
        places = [
            (m, r, p.worker.worker_id)
            for (m, r), p in self.parties_.items()
            if p.subject == subject or r in registrations
        ]
        gone = {*registrations, *(r for _, r, _ in places)}
        self.tasks = {i: t for i, t in self.tasks.items() if t.registration_id not in gone}
        self.parties_ = {k: p for k, p in self.parties_.items() if k[1] not in gone}
        told = [
            (i, a.alert.match_id, a.alert.recipient.worker_id, a.alert.part)
            for i, a in self.alerts.items()
            if a.subjects == [subject]
        ]
        alerts += self._delete_alerts(i for i, _, _, _ in told)
        for a in self.alerts.values():
            if subject in a.subjects:
                a.subjects = [s for s in a.subjects if s != subject]
        workers: dict[uuid.UUID, set[str]] = {}
        for match_id, _, worker_id in places:
            workers.setdefault(match_id, set()).add(worker_id)
        for _, told_match, recipient_id, part in told:
            if told_match is not None and part == Part.REGISTRANT:
                workers.setdefault(told_match, set()).add(recipient_id)
        for match_id, of_match in workers.items():
            self._forget_workers_not_party(match_id, of_match)
        for m in self.matches.values():
            if m.subject == subject:
                m.subject = None
        return len(match_ids), alerts

    def _forget_workers_not_party(self, match_id: uuid.UUID, workers: set[str]) -> None:
        still = {p.worker.worker_id for _, p in self._parties_of(match_id)}
        leaving = workers - still
        if not leaving:
            return
        for a in self.alerts.values():
            if a.alert.match_id == match_id:
                a.alert = replace(
                    a.alert,
                    contacts=tuple(c for c in a.alert.contacts if c.worker_id not in leaving),
                )
        self.contacts_made = {
            (m, w, with_): at
            for (m, w, with_), at in self.contacts_made.items()
            if m != match_id or (w not in leaving and with_ not in leaving)
        }

    async def expired(self, closed_before: datetime) -> tuple[list[uuid.UUID], int]:
        ended = [
            i
            for i, m in self.matches.items()
            if m.state == "closed" and m.closed_at is not None and m.closed_at < closed_before
        ]
        notices = self._delete_alerts(
            i
            for i, a in self.alerts.items()
            if a.alert.match_id is None and a.issued_at < closed_before
        )
        return ended[:1000], notices

    async def forget_matches(self, match_ids: Sequence[uuid.UUID]) -> int:
        ids = set(match_ids)
        self.forgotten_ids |= ids
        alerts = self._delete_alerts(i for i, a in self.alerts.items() if a.alert.match_id in ids)
        self.tasks = {i: t for i, t in self.tasks.items() if t.match_id not in ids}
        self.contacts_made = {k: at for k, at in self.contacts_made.items() if k[0] not in ids}
        self.parties_ = {k: p for k, p in self.parties_.items() if k[0] not in ids}
        self.matches = {i: m for i, m in self.matches.items() if i not in ids}
        self.overdue_items = {i: o for i, o in self.overdue_items.items() if o.match_id not in ids}
        return alerts

    async def prune_digests(self, before: datetime) -> int:
        sending = {
            d.digest_id
            for d in self.deliveries.values()
            if d.digest_id is not None and d.state == "pending"
        }
        gone = {i for i, g in self.digests.items() if g.created_at < before and i not in sending}
        self.digests = {i: g for i, g in self.digests.items() if i not in gone}
        self.deliveries = {i: d for i, d in self.deliveries.items() if d.digest_id not in gone}
        self.digest_items = {i: d for i, d in self.digest_items.items() if d.digest_id not in gone}
        self.overdue_items = {
            i: o for i, o in self.overdue_items.items() if o.digest_id not in gone
        }
        return len(gone)

    # --- telling people ---------------------------------------------------------------

    async def add_alert(
        self, alert: Alert, subjects: Sequence[str], organisation: str | None = None
    ) -> bool:
        if alert.alert_id in self.alerts:
            return False
        self.alerts[alert.alert_id] = _Alert(alert, list(subjects), organisation, self.clock())
        await self.tell_live(alert.recipient.worker_id)
        return True

    async def queue_for_digest(self, alert: Alert) -> None:
        if alert.alert_id in self.digest_items:
            return
        self._known_alert(alert.alert_id)
        recipient_id = alert.recipient.worker_id
        new_case = alert.match_id is not None and not any(
            a.alert.match_id == alert.match_id
            and a.alert.recipient.worker_id == recipient_id
            and i != alert.alert_id
            for i, a in self.alerts.items()
        )
        self.digest_items[alert.alert_id] = _DigestItem(
            recipient_id, alert.recipient.email, alert.match_id, new_case, self.clock()
        )

    async def add_delivery(self, alert_id: uuid.UUID, channel: str, target: str) -> None:
        if channel not in CHANNELS:
            raise ValueError(f"no channel {channel!r}: one of {', '.join(CHANNELS)}")
        delivery_id = uuid.uuid5(alert_id, f"{channel}/{target}")
        if delivery_id in self.deliveries:
            return
        self._known_alert(alert_id)
        self.deliveries[delivery_id] = _Delivery(alert_id, None, channel, target)

    async def add_task(
        self, *, match_id: uuid.UUID, registration_id: uuid.UUID, worker_id: str, addressee: str
    ) -> bool:
        task_id = uuid.uuid5(match_id, f"inform/{registration_id}")
        if task_id in self.tasks:
            return False
        self._known_match(match_id)
        self.tasks[task_id] = _Task(match_id, registration_id, worker_id, addressee, self.clock())
        return True

    async def tell_live(self, recipient_id: str) -> None:
        self.told_live.append(recipient_id)

    async def add_trend_cell(
        self, wijk: str, theme: str, window: str, children: int, trend: bool
    ) -> None:
        kept = self.trends.get((wijk, theme, window))
        if kept is None:
            self.trends[(wijk, theme, window)] = _Trend(children, trend)
            return
        # A week's count only grows; a trend event may arrive after a later count.
        kept.children = max(kept.children, children)
        kept.trend = kept.trend or trend

    # --- follow-up --------------------------------------------------------------------

    async def unacknowledged(self, issued_before: datetime) -> list[LateAlert]:
        late = []
        for i, a in self.alerts.items():
            match_id = a.alert.match_id
            m = self.matches.get(match_id) if match_id is not None else None
            if (
                match_id is not None
                and m is not None
                and m.state == "open"
                and a.acknowledged_at is None
                and a.escalated_at is None
                and a.alert.part in (Part.REGISTRANT, Part.COORDINATOR)
                and a.issued_at < issued_before
            ):
                late.append(LateAlert(i, match_id, a.issued_at, tuple(a.subjects), m.team_id))
        late.sort(key=lambda found: (found.issued_at, found.alert_id))
        return late[:500]

    async def without_contact(self, raised_before: datetime) -> list[QuietMatch]:
        quiet = sorted(
            (m.raised_at, i)
            for i, m in self.matches.items()
            if m.state == "open"
            and m.contact_made_at is None
            and m.escalated_at is None
            and m.raised_at < raised_before
        )
        return [QuietMatch(i, raised_at) for raised_at, i in quiet[:500]]

    async def mark_alert_escalated(self, alert_id: uuid.UUID, at: datetime) -> None:
        if (a := self.alerts.get(alert_id)) is not None:
            a.escalated_at = at

    async def mark_match_escalated(self, match_id: uuid.UUID, at: datetime) -> None:
        if (m := self.matches.get(match_id)) is not None:
            m.escalated_at = at

    async def queue_overdue(self, items: Sequence[Overdue]) -> None:
        for item in items:
            if item.item_id in self.overdue_items:
                continue
            if (item.kind is OverdueKind.UNACKNOWLEDGED) != (item.alert_id is not None):
                raise ValueError("an unacknowledged item names its alert, and only it does")
            self._known_match(item.match_id)
            if item.alert_id is not None:
                self._known_alert(item.alert_id)
            self.overdue_items[item.item_id] = _OverdueItem(
                item.kind,
                item.recipient.worker_id,
                item.recipient.email,
                item.match_id,
                item.alert_id,
                self.clock(),
            )

    # --- the roster -------------------------------------------------------------------

    def _roster(self) -> list[_Member]:
        """Everyone on the roster in id order (PostgreSQL's, in the C locale)."""
        return [self.members[user_id] for user_id in sorted(self.members)]

    async def team_of(self, wijk: str) -> str | None:
        return self.wijken.get(wijk)

    async def person(self, user_id: str) -> WorkerContact | None:
        found = self.members.get(user_id)
        return found.contact if found is not None else None

    async def regie(self) -> list[WorkerContact]:
        return [m.contact for m in self._roster() if m.role == "regie" and m.active]

    async def team_leads(self, team_id: str) -> list[WorkerContact]:
        return [
            m.contact
            for m in self._roster()
            if m.team_id == team_id and m.role == "team_lead" and m.active
        ]

    # --- what others write: the roster ------------------------------------------------

    def add_team(self, team_id: str, name: str, wijken: Iterable[str] = ()) -> None:
        """A team (roster table teams) and the wijken it serves (wijken)."""
        self.teams[team_id] = name
        for wijk in wijken:
            self.add_wijk(wijk, team_id)

    def add_wijk(self, wijk: str, team_id: str) -> None:
        if team_id not in self.teams:
            raise KeyError(f"no team {team_id!r}")
        self.wijken[wijk] = team_id

    def add_member(
        self,
        contact: WorkerContact,
        role: str,
        team_id: str | None = None,
        *,
        category: OrganisationCategory = OrganisationCategory.JEUGDHULP,
        active: bool = True,
    ) -> None:
        """A person on the roster (members): a worker or team lead of a team, or one of
        the regie role (of no team). Added again, their row is replaced."""
        if role not in ROLES:
            raise ValueError(f"no role {role!r}: one of {', '.join(ROLES)}")
        if (role == "regie") != (team_id is None):
            raise ValueError("the regie role, and only it, belongs to no team")
        if team_id is not None and team_id not in self.teams:
            raise KeyError(f"no team {team_id!r}")
        self.members[contact.worker_id] = _Member(contact, team_id, role, category, active)

    def set_active(self, user_id: str, active: bool) -> None:
        self.members[user_id].active = active

    # --- what others write: the inbox and the delivery loop ---------------------------

    def acknowledge(self, alert_id: uuid.UUID, at: datetime) -> bool:
        """store.acknowledge: a recipient read the alert."""
        a = self.alerts.get(alert_id)
        if a is None or a.acknowledged_at is not None:
            return False
        a.acknowledged_at = at
        return True

    def record_contact(
        self, match_id: uuid.UUID, worker_id: str, with_worker: str, at: datetime
    ) -> bool:
        """store.record_contact: a party made contact with another."""
        m = self._known_match(match_id)
        m.contact_made_at = m.contact_made_at or at
        if (match_id, worker_id, with_worker) in self.contacts_made:
            return False
        self.contacts_made[(match_id, worker_id, with_worker)] = at
        return True

    def complete_task(self, task_id: uuid.UUID, at: datetime) -> bool:
        """store.complete_task: the family was informed."""
        t = self.tasks.get(task_id)
        if t is None or t.done_at is not None:
            return False
        t.done_at = at
        return True

    def add_digest(
        self, recipient_id: str, target: str, created_at: datetime, state: str = "pending"
    ) -> uuid.UUID:
        """A digest composed at `created_at` of everything waiting for a recipient at
        `target` (store.compose_digest), its e-mail `state`: pending, sent or dead."""
        if state not in DELIVERY_STATES:
            raise ValueError(f"no delivery state {state!r}: one of {', '.join(DELIVERY_STATES)}")
        digest_id = uuid.uuid4()
        self.digests[digest_id] = _Digest(recipient_id, created_at)
        waiting: list[_DigestItem | _OverdueItem] = [
            *self.digest_items.values(),
            *self.overdue_items.values(),
        ]
        for item in waiting:
            if (item.recipient_id, item.target, item.digest_id) == (recipient_id, target, None):
                item.digest_id = digest_id
        self.deliveries[uuid.uuid5(digest_id, f"email/{target}")] = _Delivery(
            None, digest_id, "email", target, state
        )
        return digest_id

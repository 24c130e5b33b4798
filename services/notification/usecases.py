"""Notification's use cases: a match raised, joined, left, moved or ended; a notice of
earlier involvement; a subject erased; the inbox's retention; a wijk count; the
follow-up (a new coordinator for an orphaned match, overdue items on the overviews).
Each takes a unit of work (repository, outbox and audit in one transaction) and opens
what is sealed through the key store; who is told, and what, is domain.py's.

Every use case claims its event in the unit of work of its changes, so a redelivered
event changes nothing; alert ids derive from (match, recipient, kind, occasion), so the
same alert is never stored twice however it is reached.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from prometheus_client import Counter
from pydantic import BaseModel

from services.notification.domain import (
    MESSAGES,
    About,
    Alert,
    Overdue,
    Part,
    alert_id,
    alerts_for_join,
    alerts_for_match,
    alerts_to_all,
    choose_coordinator,
    forgotten_when_key_is_gone,
    informing_addressee,
    keeps_coordinator,
    no_contact_overdue,
    overdue,
    transfer_alerts,
    unacknowledged_overdue,
)
from services.notification.ports import Keys, UnitOfWork
from services.notification.yours import seal_yours
from shared.contracts import (
    AlertIssued,
    AuditAction,
    CoordinationTransferred,
    EarlierInvolvementNoticed,
    MatchContact,
    MatchDissolved,
    MatchJoined,
    MatchKind,
    MatchLeft,
    MatchRaised,
    SealedMatch,
    SealedNotice,
    SealedTransfer,
    SubjectShredded,
    Topics,
    WijkThemeCounted,
    WijkTrendRaised,
    WorkerContact,
)
from shared.keystore import KeyShredded, SealBroken
from shared.policy import Policy
from shared.webhook import WebhookTarget

log = logging.getLogger(__name__)

ALERTS = Counter(
    "vroegsignaal_notification_alerts_total", "Alerts issued", ["kind", "occasion", "part"]
)
ERASED = Counter(
    "vroegsignaal_notification_erased_total", "Erasures, and match events of erased subjects"
)
UNASSIGNED = Counter(
    "vroegsignaal_notification_unassigned_total",
    "Matches whose team had no eligible coordinator (the regie role is told)",
)
PARKED = Counter(
    "vroegsignaal_notification_parked_total",
    "Lifecycle events that overtook their match's MatchRaised and waited for it",
)
ESCALATIONS = Counter(
    "vroegsignaal_notification_escalations_total",
    "Alerts and matches put on an overview as past their period",
    ["kind"],
)

S = TypeVar("S", bound=BaseModel)
Lifecycle = CoordinationTransferred | MatchDissolved | MatchLeft


class SealedInvalid(ValueError):
    """A sealed part that opened but is not what its event says it holds."""


@dataclass(frozen=True)
class SealRefused:
    """An event whose sealed part does not open, or is not what it should be:
    dead-lettered by the caller, unclaimed. The reason quotes nothing opened."""

    code: str  # seal-broken, sealed-invalid
    reason: str


class Notifications:
    def __init__(
        self,
        policy: Policy,
        keys: Keys,
        topics: Topics,
        webhooks: Sequence[WebhookTarget] = (),
        *,
        email: bool = False,
    ) -> None:
        self.policy = policy
        self.keys = keys
        self.topics = topics
        self.webhooks = list(webhooks)
        self.email = email

    # --- opening what is sealed ----------------------------------------------------------

    async def opened(
        self,
        uow: UnitOfWork,
        event: MatchRaised | MatchJoined | CoordinationTransferred | EarlierInvolvementNoticed,
        model: type[S],
    ) -> S | SealRefused | None:
        """The event's sealed part; None when the subject was erased (the event is
        claimed, nothing told); SealRefused when the seal is broken."""
        try:
            return await self.open_as(event, model)
        except KeyShredded:
            ERASED.inc()
            forget = isinstance(event, MatchRaised | MatchJoined) and forgotten_when_key_is_gone(
                event.kind
            )
            if await uow.claim(event.event_id) and forget:
                assert isinstance(event, MatchRaised | MatchJoined)
                await uow.repo.forget_match_id(event.match_id)
            return None
        except SealBroken as broken:
            return SealRefused("seal-broken", str(broken))
        except SealedInvalid as invalid:
            return SealRefused("sealed-invalid", str(invalid))

    async def open_as(
        self,
        event: MatchRaised | MatchJoined | CoordinationTransferred | EarlierInvolvementNoticed,
        model: type[S],
    ) -> S:
        """The event's sealed part as `model`; KeyShredded, SealBroken or SealedInvalid."""
        opened = await self.keys.open_sealed(event.subject, event.event_id.bytes, event.sealed)
        try:
            return model.model_validate_json(opened)
        except ValueError:
            # Never pydantic's message: it quotes the opened content.
            raise SealedInvalid(f"the sealed part is not a {model.__name__}") from None

    # --- who coordinates ---------------------------------------------------------------

    async def assign(
        self, uow: UnitOfWork, team_id: str | None, family: str | None, *, keep_family: bool = True
    ) -> WorkerContact | None:
        if team_id is None:
            return None
        repo = uow.repo
        await repo.lock_assignment(team_id)
        existing = await repo.family_coordinator(family) if keep_family else None
        current = await repo.member(existing) if existing else None
        chosen = choose_coordinator(current, await repo.team_workers(team_id), self.policy)
        if chosen is None:
            UNASSIGNED.inc()
            return None
        return await repo.person(chosen)

    # --- telling people ----------------------------------------------------------------

    async def issue(
        self,
        uow: UnitOfWork,
        alerts: Sequence[Alert],
        about: About,
        purpose: str,
        organisations: Mapping[str, str] | None = None,
    ) -> int:
        """Store, publish and audit each new alert; queue it for its recipient's next
        digest e-mail and for the webhooks of their organisation."""
        issued = 0
        for alert in alerts:
            organisation = (
                (organisations or {}).get(alert.recipient.worker_id)
                if alert.part is Part.REGISTRANT
                else None
            )
            subjects = about.of(alert)
            if not await uow.repo.add_alert(alert, subjects, organisation):
                continue
            issued += 1
            ALERTS.labels(alert.kind.value, alert.occasion.split(":", 1)[0], alert.part).inc()
            await uow.publish(
                self.topics.alerts,
                AlertIssued(
                    alert_id=alert.alert_id,
                    match_id=alert.match_id,
                    kind=alert.kind,
                    occasion=alert.occasion.split(":", 1)[0],
                    part=alert.part.value,
                    recipient_id=alert.recipient.worker_id,
                ),
            )
            await uow.record(
                action=AuditAction.NOTIFY,
                object_type="alert",
                object_id=str(alert.alert_id),
                subjects=subjects,
                on_behalf_of=alert.recipient.worker_id,
                purpose=f"{purpose} ({alert.part.value})",
            )
            if self.email:
                await uow.repo.queue_for_digest(alert)
            for target in self.webhooks:
                if organisation in target.organisations:
                    await uow.repo.add_delivery(alert.alert_id, "webhook", target.name)
        return issued

    async def inform_tasks(
        self,
        uow: UnitOfWork,
        match_id: uuid.UUID,
        contacts: Sequence[MatchContact],
        now: datetime,
    ) -> None:
        """Rule 10: each registering worker gets the task to inform, addressed by age."""
        for c in contacts:
            addressee = informing_addressee(c, now.astimezone(UTC).date(), self.policy)
            if await uow.repo.add_task(
                match_id=match_id,
                registration_id=c.registration_id,
                worker_id=c.worker.worker_id,
                addressee=addressee,
            ):
                await uow.record(
                    action=AuditAction.ASSIGN,
                    object_type="inform-task",
                    object_id=str(c.registration_id),
                    subjects=[c.subject],
                    on_behalf_of=c.worker.worker_id,
                    purpose="notification: task to inform the family (rule 10)",
                )

    async def open_match(
        self,
        uow: UnitOfWork,
        event: MatchRaised | MatchJoined,
        sealed: SealedMatch,
        now: datetime,
    ) -> None:
        """A new match: its team, its coordinator, its parties, everyone told, tasks set."""
        repo = uow.repo
        team_id = await repo.team_of(sealed.wijk)
        coordinator = await self.assign(uow, team_id, sealed.family)
        raised_at = event.raised_at if isinstance(event, MatchRaised) else event.joined_at
        if not await repo.add_match(
            match_id=event.match_id,
            kind=event.kind.value,
            # A family match is about each of its children: they are its parties'.
            subject=event.subject if event.kind is MatchKind.PERSON else None,
            family=sealed.family,
            wijk=sealed.wijk,
            team_id=team_id,
            coordinator_id=coordinator.worker_id if coordinator else None,
            raised_at=raised_at,
        ):
            return  # known already (its join overtook it): the same alerts exist
        await repo.add_parties(
            event.match_id, sealed.contacts, await seal_yours(self.keys, sealed.contacts)
        )
        about = await repo.about(event.match_id)
        if coordinator is not None:
            await uow.record(
                action=AuditAction.ASSIGN,
                object_type="match",
                object_id=str(event.match_id),
                subjects=list(about.subjects),
                on_behalf_of=coordinator.worker_id,
                purpose=f"notification: coordinator of the match, team {team_id}",
            )
        else:
            log.warning(
                "match %s has no coordinator: team %s has no one eligible",
                event.match_id,
                team_id or "(wijk without team)",
            )
        alerts = alerts_for_match(
            event.match_id, event.kind, sealed.contacts, coordinator, await repo.regie()
        )
        await self.issue(
            uow,
            alerts,
            about,
            "notification: tell whom to contact about a new match",
            {c.worker.worker_id: c.organisation for c in sealed.contacts},
        )
        await self.inform_tasks(uow, event.match_id, sealed.contacts, now)
        await self.apply_parked(uow, event.match_id)

    async def raised(
        self, uow: UnitOfWork, event: MatchRaised, now: datetime
    ) -> SealRefused | None:
        sealed = await self.opened(uow, event, SealedMatch)
        if not isinstance(sealed, SealedMatch):
            return sealed
        if await uow.claim(event.event_id):
            await uow.repo.lock_match(event.match_id)
            if not await uow.repo.forgotten(event.match_id):
                await self.open_match(uow, event, sealed, now)
        return None

    async def joined(
        self, uow: UnitOfWork, event: MatchJoined, now: datetime
    ) -> SealRefused | None:
        sealed = await self.opened(uow, event, SealedMatch)
        if not isinstance(sealed, SealedMatch):
            return sealed
        if not await uow.claim(event.event_id):
            return None
        repo = uow.repo
        await repo.lock_match(event.match_id)
        known = await repo.match(event.match_id)
        if known is None and await repo.forgotten(event.match_id):
            return None  # its subject was erased
        if known is None:
            # The join overtook the raise: this is the match as it stands now.
            await self.open_match(uow, event, sealed, now)
            return None
        newcomers = set(event.newcomers)
        await repo.add_parties(
            event.match_id, sealed.contacts, await seal_yours(self.keys, sealed.contacts)
        )
        coordinator = await repo.person(known.coordinator_id) if known.coordinator_id else None
        await self.issue(
            uow,
            alerts_for_join(event.match_id, event.kind, sealed.contacts, newcomers, coordinator),
            await repo.about(event.match_id),
            "notification: tell involved workers of a colleague who joined",
            {c.worker.worker_id: c.organisation for c in sealed.contacts},
        )
        await self.inform_tasks(
            uow,
            event.match_id,
            [c for c in sealed.contacts if c.registration_id in newcomers],
            now,
        )
        return None

    async def everyone_involved(
        self, uow: UnitOfWork, match_id: uuid.UUID, coordinators: Sequence[WorkerContact | None]
    ) -> tuple[list[tuple[WorkerContact, Part]], dict[str, str]]:
        """The workers of a match and its coordinators, and each worker's organisation
        (for the partner systems' webhooks)."""
        parties = await uow.repo.parties(match_id)
        involved: list[tuple[WorkerContact, Part]] = [(w, Part.REGISTRANT) for w, _ in parties]
        involved += [(c, Part.COORDINATOR) for c in coordinators if c is not None]
        return involved, {w.worker_id: org for w, org in parties}

    async def in_order(
        self,
        uow: UnitOfWork,
        event: Lifecycle,
        apply: Callable[[UnitOfWork], Awaitable[None]],
    ) -> None:
        """Apply a lifecycle event once, in its match's order: now when the match is
        here, when its MatchRaised comes when it is not, never when it was forgotten."""
        if not await uow.claim(event.event_id):
            return
        repo = uow.repo
        await repo.lock_match(event.match_id)
        if await repo.match(event.match_id) is not None:
            await apply(uow)
        elif not await repo.forgotten(event.match_id):
            await repo.park(event.event_id, event.match_id, type(event).__name__, event.to_bytes())
            PARKED.inc()

    async def apply_parked(self, uow: UnitOfWork, match_id: uuid.UUID) -> None:
        for kind, payload in await uow.repo.parked(match_id):
            if kind == CoordinationTransferred.__name__:
                moved = CoordinationTransferred.model_validate_json(payload)
                try:
                    sealed = await self.open_as(moved, SealedTransfer)
                except KeyShredded:
                    continue
                except (SealBroken, SealedInvalid) as broken:
                    # It waited for its match; it cannot hold the match up.
                    log.warning(
                        "a parked transfer of match %s is skipped: %s", moved.match_id, broken
                    )
                    continue
                await self.transfer(uow, moved, sealed)
            elif kind == MatchLeft.__name__:
                await self.leave(uow, MatchLeft.model_validate_json(payload))
            else:
                await self.dissolve(uow, MatchDissolved.model_validate_json(payload))

    async def transferred(
        self, uow: UnitOfWork, event: CoordinationTransferred
    ) -> SealRefused | None:
        """Rule 9: the new wijk's team takes over; everyone involved is told."""
        moved = await self.opened(uow, event, SealedTransfer)
        if not isinstance(moved, SealedTransfer):
            return moved
        await self.in_order(uow, event, lambda u: self.transfer(u, event, moved))
        return None

    async def transfer(
        self, uow: UnitOfWork, event: CoordinationTransferred, moved: SealedTransfer
    ) -> None:
        repo = uow.repo
        known = await repo.match(event.match_id)
        if known is None:
            return
        before = await repo.person(known.coordinator_id) if known.coordinator_id else None
        team_id = await repo.team_of(moved.to_wijk)
        after: WorkerContact | None = before
        if not keeps_coordinator(known.team_id, team_id, before):
            after = await self.assign(uow, team_id, None, keep_family=False)
        await repo.reassign(
            event.match_id,
            wijk=moved.to_wijk,
            team_id=team_id,
            coordinator_id=after.worker_id if after else None,
        )
        about = await repo.about(event.match_id)
        await uow.record(
            action=AuditAction.ASSIGN,
            object_type="match",
            object_id=str(event.match_id),
            subjects=list(about.subjects),
            on_behalf_of=after.worker_id if after else None,
            purpose=f"notification: coordination moved to team {team_id} (rule 9)",
        )
        parties = await repo.parties(event.match_id)
        await self.issue(
            uow,
            transfer_alerts(
                event.match_id,
                event.kind,
                event.event_id,
                [w for w, _ in parties],
                before,
                after,
                await repo.regie(),
            ),
            about,
            "notification: tell everyone involved that coordination moved",
            {w.worker_id: org for w, org in parties},
        )

    async def left(self, uow: UnitOfWork, event: MatchLeft) -> None:
        await self.in_order(uow, event, lambda u: self.leave(u, event))

    async def leave(self, uow: UnitOfWork, event: MatchLeft) -> None:
        """Workers whose registration ended lose their place in a match that goes on."""
        repo = uow.repo
        if await repo.match(event.match_id) is None:
            return
        about = await repo.about(event.match_id)
        dropped = await repo.drop_parties(event.match_id, event.left)
        await uow.record(
            action=AuditAction.UPDATE,
            object_type="match",
            object_id=str(event.match_id),
            subjects=list(about.subjects),
            purpose=f"notification: {dropped} ended registrations no longer party to the match",
        )

    async def dissolved(self, uow: UnitOfWork, event: MatchDissolved) -> None:
        await self.in_order(uow, event, lambda u: self.dissolve(u, event))

    async def dissolve(self, uow: UnitOfWork, event: MatchDissolved) -> None:
        repo = uow.repo
        known = await repo.match(event.match_id)
        if known is None or not await repo.close_match(event.match_id, event.dissolved_at):
            return
        coordinator = await repo.person(known.coordinator_id) if known.coordinator_id else None
        recipients, organisations = await self.everyone_involved(uow, event.match_id, [coordinator])
        await self.issue(
            uow,
            alerts_to_all(
                event.match_id,
                event.kind,
                recipients,
                "dissolved",
                MESSAGES["dissolved"],
                coordinator,
            ),
            await repo.about(event.match_id),
            "notification: tell everyone involved that the match ended",
            organisations,
        )

    async def earlier(
        self, uow: UnitOfWork, event: EarlierInvolvementNoticed
    ) -> SealRefused | None:
        """Rule 6: the new registration's worker learns which organisations were involved."""
        notice = await self.opened(uow, event, SealedNotice)
        if not isinstance(notice, SealedNotice):
            return notice
        occasion = f"earlier:{event.registration_id}"
        alert = Alert(
            alert_id(None, notice.worker.worker_id, MatchKind.PERSON, occasion),
            None,
            MatchKind.PERSON,
            occasion,
            Part.REGISTRANT,
            notice.worker,
            (),
            None,
            f"{MESSAGES['earlier']} {', '.join(notice.earlier_organisations)}",
        )
        if await uow.claim(event.event_id):
            await self.issue(
                uow,
                [alert],
                About((event.subject,), {notice.worker.worker_id: (event.subject,)}),
                "notification: one-time notice of earlier involvement (rule 6)",
                {notice.worker.worker_id: notice.organisation},
            )
        return None

    async def erased(self, uow: UnitOfWork, erased: SubjectShredded) -> None:
        """The subject's data key was shredded (erased as a whole, or nothing of it kept
        any more): the copies notification opened (contacts, alerts, tasks) go with it."""
        if not await uow.claim(erased.event_id):
            return
        repo = uow.repo
        for match_id in await repo.matches_of(erased.subject):
            await repo.lock_match(match_id)
        matches, alerts = await repo.forget_subject(erased.subject, erased.registrations)
        await uow.record(
            action=AuditAction.DELETE,
            object_type="subject-notifications",
            subjects=[erased.subject],
            purpose=f"notification: erased {matches} matches and {alerts} alerts of a subject "
            f"whose data key was shredded ({erased.reason})"[:1000],
        )
        ERASED.inc()

    async def retention(self, uow: UnitOfWork, now: datetime) -> int:
        """A match's alerts, tasks and contacts go `keep_closed_days` after it ended (and
        a notice without a match that long after it was issued). Returns alerts removed."""
        keep = self.policy.notification
        repo = uow.repo
        # The record of digest e-mails sent (a worker's address, when) goes sooner.
        await repo.prune_digests(now - timedelta(days=keep.digest.keep_days))
        match_ids, notices = await repo.expired(now - timedelta(days=keep.keep_closed_days))
        if not match_ids and not notices:
            return 0
        alerts = await repo.forget_matches(match_ids) + notices
        await uow.record(
            action=AuditAction.DELETE,
            object_type="inbox-history",
            purpose=f"notification: retention removed {len(match_ids)} ended matches and "
            f"{alerts} alerts older than {keep.keep_closed_days} days",
        )
        return alerts

    async def cell(self, uow: UnitOfWork, cell: WijkTrendRaised | WijkThemeCounted) -> None:
        """Keep the anonymous wijk x theme counts (only cells of at least k ever arrive)."""
        if await uow.claim(cell.event_id):
            await uow.repo.add_trend_cell(
                cell.wijk,
                cell.theme.value,
                cell.window,
                cell.distinct_children,
                isinstance(cell, WijkTrendRaised),
            )

    # --- follow-up -------------------------------------------------------------------

    async def reassign_orphans(self, uow: UnitOfWork) -> int:
        """A match whose coordinator was deactivated, or whose team had no one eligible,
        gets one as soon as the roster allows; everyone involved is told."""
        repo = uow.repo
        moved = 0
        for orphan in await repo.orphaned():
            await repo.lock_match(orphan.match_id)
            after = await self.assign(uow, orphan.team_id, orphan.family)
            if after is None:
                continue
            about = await repo.about(orphan.match_id)
            await repo.reassign(
                orphan.match_id,
                wijk=orphan.wijk,
                team_id=orphan.team_id,
                coordinator_id=after.worker_id,
            )
            await uow.record(
                action=AuditAction.ASSIGN,
                object_type="match",
                object_id=str(orphan.match_id),
                subjects=list(about.subjects),
                on_behalf_of=after.worker_id,
                purpose=f"notification: new coordinator in team {orphan.team_id} "
                "(the previous one left, or none was eligible)",
            )
            recipients, organisations = await self.everyone_involved(uow, orphan.match_id, [after])
            recipients += [(r, Part.REGIE) for r in await repo.regie()]
            await self.issue(
                uow,
                alerts_to_all(
                    orphan.match_id,
                    orphan.kind,
                    recipients,
                    f"reassigned:{after.worker_id}",
                    MESSAGES["reassigned"],
                    after,
                ),
                about,
                "notification: tell everyone involved of the new coordinator",
                organisations,
            )
            moved += 1
        return moved

    async def escalate(self, uow: UnitOfWork, now: datetime) -> int:
        """Alerts not acknowledged in time go on the overview of the match's team lead
        (the regie role's when the team has none); matches without contact in time on
        the regie role's. Each counts in their next digest e-mail: an overview, not an
        alert per match. Periods are working days (weekends and Dutch public holidays
        excluded), from the policy. Returns how many became overdue."""
        periods = self.policy.escalation
        repo = uow.repo
        became = 0
        regie = await repo.regie()
        # N working days are at least N calendar days: a cheap bound for the query.
        late = await repo.unacknowledged(
            now - timedelta(days=periods.alert_unacknowledged_working_days)
        )
        for alert in late:
            if not overdue(alert.issued_at, periods.alert_unacknowledged_working_days, now):
                continue
            leads = await repo.team_leads(alert.team_id) if alert.team_id else []
            await self.put_on_overview(
                uow,
                unacknowledged_overdue(alert.alert_id, alert.match_id, leads, regie),
                # About the children the late alert was about.
                list(alert.subjects),
                f"notification: alert {alert.alert_id} was not acknowledged in time",
            )
            await repo.mark_alert_escalated(alert.alert_id, now)
            ESCALATIONS.labels("unacknowledged").inc()
            became += 1
        quiet = await repo.without_contact(now - timedelta(days=periods.no_contact_working_days))
        for match in quiet:
            if not overdue(match.raised_at, periods.no_contact_working_days, now):
                continue
            await self.put_on_overview(
                uow,
                no_contact_overdue(match.match_id, regie),
                await repo.about_many([match.match_id]),
                f"notification: no contact was recorded in time for match {match.match_id}",
            )
            await repo.mark_match_escalated(match.match_id, now)
            ESCALATIONS.labels("no-contact").inc()
            became += 1
        return became

    async def put_on_overview(
        self, uow: UnitOfWork, items: Sequence[Overdue], subjects: list[str], purpose: str
    ) -> None:
        """Overdue items: on their recipients' overview (live), counted in their next
        digest e-mail, and in the log for the children they point at."""
        if self.email:
            await uow.repo.queue_overdue(items)
        for item in items:
            await uow.record(
                action=AuditAction.NOTIFY,
                object_type="overdue",
                object_id=str(item.item_id),
                subjects=subjects,
                on_behalf_of=item.recipient.worker_id,
                purpose=f"{purpose}; on the overview of the {item.kind.value} follow-up",
            )
            await uow.repo.tell_live(item.recipient.worker_id)

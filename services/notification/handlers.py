"""Notification subscribers: decode -> open the seal -> who is told (roster, coordinator)
-> store alerts, tasks, digest items and deliveries + outbox (AlertIssued, audit) -> ack.

Every handler claims its event in the transaction of its changes, so a redelivered event
changes nothing; alert ids derive from (match, recipient, kind, occasion), so the same
alert is never stored twice however it is reached.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import asyncpg
from faststream.kafka import KafkaMessage
from prometheus_client import Counter
from pydantic import BaseModel

from services.notification import roster, store
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
    informing_addressee,
    keeps_coordinator,
    no_contact_overdue,
    overdue,
    transfer_alerts,
    unacknowledged_overdue,
)
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
    WijkThemeCounted,
    WijkTrendRaised,
    WorkerContact,
)
from shared.db import Conn, claim_message
from shared.keystore import KeyShredded, SealBroken
from shared.outbox import enqueue
from shared.policy import Policy
from shared.service import ServiceRuntime
from shared.webhook import WebhookTarget

log = logging.getLogger(__name__)

CONSUMER = "notification"

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


class Notifier:
    def __init__(
        self,
        runtime: ServiceRuntime,
        policy: Policy,
        webhooks: Sequence[WebhookTarget] = (),
        *,
        email: bool = False,
    ) -> None:
        self.runtime = runtime
        self.policy = policy
        self.webhooks = list(webhooks)
        self.email = email

    async def opened(
        self,
        message: KafkaMessage,
        event: MatchRaised | MatchJoined | CoordinationTransferred | EarlierInvolvementNoticed,
        model: type[S],
    ) -> S | None:
        """The event's sealed part, or None when the subject was erased (claimed, nothing
        told) or the seal is broken (dead-lettered)."""
        try:
            opened = await self.runtime.keystore.open_sealed(
                event.subject, event.event_id.bytes, event.sealed
            )
            return model.model_validate_json(opened)
        except KeyShredded:
            ERASED.inc()
            # A person match's key is its subject's: the subject was erased, the match is
            # forgotten. A family match's key is replaced when one child is erased: the
            # match goes on for the siblings, under the new key.
            forget = isinstance(event, MatchRaised | MatchJoined) and (
                event.kind is MatchKind.PERSON
            )
            async with self.runtime.pool.acquire() as conn, conn.transaction():
                if await claim_message(conn, CONSUMER, event.event_id) and forget:
                    assert isinstance(event, MatchRaised | MatchJoined)
                    await store.forget_match_id(conn, event.match_id)
            return None
        except SealBroken as broken:
            await self.runtime.dead_letters.send(message, "seal-broken", str(broken))
            return None

    # --- who coordinates ---------------------------------------------------------------

    async def assign(
        self, conn: Conn, team_id: str | None, family: str | None, *, keep_family: bool = True
    ) -> WorkerContact | None:
        if team_id is None:
            return None
        await store.lock_assignment(conn, team_id)
        existing = await store.family_coordinator(conn, family) if keep_family else None
        current = await store.member(conn, existing) if existing else None
        chosen = choose_coordinator(current, await store.team_workers(conn, team_id), self.policy)
        if chosen is None:
            UNASSIGNED.inc()
            return None
        return await roster.person(conn, chosen)

    # --- telling people ----------------------------------------------------------------

    async def issue(
        self,
        conn: Conn,
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
            if not await store.add_alert(conn, alert, subjects, organisation):
                continue
            issued += 1
            ALERTS.labels(alert.kind.value, alert.occasion.split(":", 1)[0], alert.part).inc()
            await enqueue(
                conn,
                self.runtime.topics.alerts,
                AlertIssued(
                    alert_id=alert.alert_id,
                    match_id=alert.match_id,
                    kind=alert.kind,
                    occasion=alert.occasion.split(":", 1)[0],
                    part=alert.part.value,
                    recipient_id=alert.recipient.worker_id,
                ),
            )
            await self.runtime.audit.record(
                conn,
                action=AuditAction.NOTIFY,
                object_type="alert",
                object_id=str(alert.alert_id),
                subjects=subjects,
                on_behalf_of=alert.recipient.worker_id,
                purpose=f"{purpose} ({alert.part.value})",
            )
            if self.email:
                await store.queue_for_digest(conn, alert)
            for target in self.webhooks:
                if organisation in target.organisations:
                    await store.add_delivery(conn, alert.alert_id, "webhook", target.name)
        return issued

    async def inform_tasks(
        self, conn: Conn, match_id: uuid.UUID, contacts: Sequence[MatchContact]
    ) -> None:
        """Rule 10: each registering worker gets the task to inform, addressed by age."""
        today = datetime.now(UTC).date()
        for c in contacts:
            addressee = informing_addressee(c, today, self.policy)
            if await store.add_task(
                conn,
                match_id=match_id,
                registration_id=c.registration_id,
                worker_id=c.worker.worker_id,
                addressee=addressee,
            ):
                await self.runtime.audit.record(
                    conn,
                    action=AuditAction.ASSIGN,
                    object_type="inform-task",
                    object_id=str(c.registration_id),
                    subjects=[c.subject],
                    on_behalf_of=c.worker.worker_id,
                    purpose="notification: task to inform the family (rule 10)",
                )

    async def open_match(
        self, conn: Conn, event: MatchRaised | MatchJoined, sealed: SealedMatch
    ) -> None:
        """A new match: its team, its coordinator, its parties, everyone told, tasks set."""
        team_id = await roster.team_of(conn, sealed.wijk)
        coordinator = await self.assign(conn, team_id, sealed.family)
        raised_at = event.raised_at if isinstance(event, MatchRaised) else event.joined_at
        if not await store.add_match(
            conn,
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
        await store.add_parties(
            conn,
            event.match_id,
            sealed.contacts,
            await seal_yours(self.runtime.keystore, sealed.contacts),
        )
        about = await store.about(conn, event.match_id)
        if coordinator is not None:
            await self.runtime.audit.record(
                conn,
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
            event.match_id,
            event.kind,
            sealed.contacts,
            coordinator,
            await roster.regie(conn),
        )
        await self.issue(
            conn,
            alerts,
            about,
            "notification: tell whom to contact about a new match",
            {c.worker.worker_id: c.organisation for c in sealed.contacts},
        )
        await self.inform_tasks(conn, event.match_id, sealed.contacts)
        await self.apply_parked(conn, event.match_id)

    async def on_raised(self, message: KafkaMessage, event: MatchRaised) -> None:
        sealed = await self.opened(message, event, SealedMatch)
        if sealed is None:
            return
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            if await claim_message(conn, CONSUMER, event.event_id):
                await store.lock_match(conn, event.match_id)
                if not await store.forgotten(conn, event.match_id):
                    await self.open_match(conn, event, sealed)

    async def on_joined(self, message: KafkaMessage, event: MatchJoined) -> None:
        sealed = await self.opened(message, event, SealedMatch)
        if sealed is None:
            return
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            if not await claim_message(conn, CONSUMER, event.event_id):
                return
            await store.lock_match(conn, event.match_id)
            known = await store.match(conn, event.match_id)
            if known is None and await store.forgotten(conn, event.match_id):
                return  # its subject was erased
            if known is None:
                # The join overtook the raise: this is the match as it stands now.
                await self.open_match(conn, event, sealed)
                return
            newcomers = set(event.newcomers)
            await store.add_parties(
                conn,
                event.match_id,
                sealed.contacts,
                await seal_yours(self.runtime.keystore, sealed.contacts),
            )
            coordinator = (
                await roster.person(conn, known["coordinator_id"])
                if known["coordinator_id"]
                else None
            )
            await self.issue(
                conn,
                alerts_for_join(
                    event.match_id, event.kind, sealed.contacts, newcomers, coordinator
                ),
                await store.about(conn, event.match_id),
                "notification: tell involved workers of a colleague who joined",
                {c.worker.worker_id: c.organisation for c in sealed.contacts},
            )
            await self.inform_tasks(
                conn,
                event.match_id,
                [c for c in sealed.contacts if c.registration_id in newcomers],
            )

    async def everyone_involved(
        self, conn: Conn, match_id: uuid.UUID, coordinators: Sequence[WorkerContact | None]
    ) -> tuple[list[tuple[WorkerContact, Part]], dict[str, str]]:
        """The workers of a match and its coordinators, and each worker's organisation
        (for the partner systems' webhooks)."""
        parties = await store.parties(conn, match_id)
        involved: list[tuple[WorkerContact, Part]] = [(w, Part.REGISTRANT) for w, _ in parties]
        involved += [(c, Part.COORDINATOR) for c in coordinators if c is not None]
        return involved, {w.worker_id: org for w, org in parties}

    async def waiting(
        self, conn: Conn, event: CoordinationTransferred | MatchDissolved | MatchLeft
    ) -> asyncpg.Record | None:
        """The match an event is about; None when it is forgotten, or not here yet (then
        the event waits for it, and is applied when its MatchRaised arrives)."""
        await store.lock_match(conn, event.match_id)
        known = await store.match(conn, event.match_id)
        if known is None and not await store.forgotten(conn, event.match_id):
            await store.park(
                conn, event.event_id, event.match_id, type(event).__name__, event.to_bytes()
            )
            PARKED.inc()
        return known

    async def in_order(
        self,
        event: CoordinationTransferred | MatchDissolved | MatchLeft,
        apply: Callable[[Conn], Awaitable[None]],
    ) -> None:
        """Apply a lifecycle event once, in its match's order: now when the match is
        here, when its MatchRaised comes when it is not, never when it was forgotten."""
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            if await claim_message(conn, CONSUMER, event.event_id) and await self.waiting(
                conn, event
            ):
                await apply(conn)

    async def apply_parked(self, conn: Conn, match_id: uuid.UUID) -> None:
        for kind, payload in await store.parked(conn, match_id):
            if kind == CoordinationTransferred.__name__:
                moved = CoordinationTransferred.model_validate_json(payload)
                try:
                    opened = await self.runtime.keystore.open_sealed(
                        moved.subject, moved.event_id.bytes, moved.sealed
                    )
                except KeyShredded:
                    continue
                await self.transfer(conn, moved, SealedTransfer.model_validate_json(opened))
            elif kind == MatchLeft.__name__:
                await self.leave(conn, MatchLeft.model_validate_json(payload))
            else:
                await self.dissolve(conn, MatchDissolved.model_validate_json(payload))

    async def on_transferred(self, message: KafkaMessage, event: CoordinationTransferred) -> None:
        """Rule 9: the new wijk's team takes over; everyone involved is told."""
        moved = await self.opened(message, event, SealedTransfer)
        if moved is None:
            return
        await self.in_order(event, lambda conn: self.transfer(conn, event, moved))

    async def transfer(
        self, conn: Conn, event: CoordinationTransferred, moved: SealedTransfer
    ) -> None:
        known = await store.match(conn, event.match_id)
        if known is None:
            return
        before = (
            await roster.person(conn, known["coordinator_id"]) if known["coordinator_id"] else None
        )
        team_id = await roster.team_of(conn, moved.to_wijk)
        after: WorkerContact | None = before
        if not keeps_coordinator(known["team_id"], team_id, before):
            after = await self.assign(conn, team_id, None, keep_family=False)
        await store.reassign(
            conn,
            event.match_id,
            wijk=moved.to_wijk,
            team_id=team_id,
            coordinator_id=after.worker_id if after else None,
        )
        about = await store.about(conn, event.match_id)
        await self.runtime.audit.record(
            conn,
            action=AuditAction.ASSIGN,
            object_type="match",
            object_id=str(event.match_id),
            subjects=list(about.subjects),
            on_behalf_of=after.worker_id if after else None,
            purpose=f"notification: coordination moved to team {team_id} (rule 9)",
        )
        parties = await store.parties(conn, event.match_id)
        await self.issue(
            conn,
            transfer_alerts(
                event.match_id,
                event.kind,
                event.event_id,
                [w for w, _ in parties],
                before,
                after,
                await roster.regie(conn),
            ),
            about,
            "notification: tell everyone involved that coordination moved",
            {w.worker_id: org for w, org in parties},
        )

    async def on_left(self, event: MatchLeft) -> None:
        await self.in_order(event, lambda conn: self.leave(conn, event))

    async def leave(self, conn: Conn, event: MatchLeft) -> None:
        """Workers whose registration ended lose their place in a match that goes on."""
        known = await store.match(conn, event.match_id)
        if known is None:
            return
        about = await store.about(conn, event.match_id)
        dropped = await store.drop_parties(conn, event.match_id, event.left)
        await self.runtime.audit.record(
            conn,
            action=AuditAction.UPDATE,
            object_type="match",
            object_id=str(event.match_id),
            subjects=list(about.subjects),
            purpose=f"notification: {dropped} ended registrations no longer party to the match",
        )

    async def on_dissolved(self, event: MatchDissolved) -> None:
        await self.in_order(event, lambda conn: self.dissolve(conn, event))

    async def dissolve(self, conn: Conn, event: MatchDissolved) -> None:
        known = await store.match(conn, event.match_id)
        if known is None:
            return
        if not await store.close_match(conn, event.match_id, event.dissolved_at):
            return
        coordinator = (
            await roster.person(conn, known["coordinator_id"]) if known["coordinator_id"] else None
        )
        recipients, organisations = await self.everyone_involved(
            conn, event.match_id, [coordinator]
        )
        await self.issue(
            conn,
            alerts_to_all(
                event.match_id,
                event.kind,
                recipients,
                "dissolved",
                MESSAGES["dissolved"],
                coordinator,
            ),
            await store.about(conn, event.match_id),
            "notification: tell everyone involved that the match ended",
            organisations,
        )

    async def on_earlier(self, message: KafkaMessage, event: EarlierInvolvementNoticed) -> None:
        """Rule 6: the new registration's worker learns which organisations were involved."""
        notice = await self.opened(message, event, SealedNotice)
        if notice is None:
            return
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
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            if await claim_message(conn, CONSUMER, event.event_id):
                await self.issue(
                    conn,
                    [alert],
                    About((event.subject,), {notice.worker.worker_id: (event.subject,)}),
                    "notification: one-time notice of earlier involvement (rule 6)",
                    {notice.worker.worker_id: notice.organisation},
                )

    async def on_erased(self, erased: SubjectShredded) -> None:
        """The subject's data key was shredded (erased as a whole, or nothing of it kept
        any more): the copies notification opened (contacts, alerts, tasks) go with it."""
        why = f"whose data key was shredded ({erased.reason})"
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            if not await claim_message(conn, CONSUMER, erased.event_id):
                return
            for match_id in await store.matches_of(conn, erased.subject):
                await store.lock_match(conn, match_id)
            matches, alerts = await store.forget_subject(conn, erased.subject, erased.registrations)
            await self.runtime.audit.record(
                conn,
                action=AuditAction.DELETE,
                object_type="subject-notifications",
                subjects=[erased.subject],
                purpose=f"notification: erased {matches} matches and {alerts} alerts of a "
                f"subject {why}"[:1000],
            )
        ERASED.inc()

    async def retention(self, now: datetime | None = None) -> int:
        """A match's alerts, tasks and contacts go `keep_closed_days` after it ended (and a
        notice without a match that long after it was issued). Returns alerts removed."""
        now = now or datetime.now(UTC)
        cutoff = now - timedelta(days=self.policy.notification.keep_closed_days)
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            # The record of digest e-mails sent (a worker's address, when) goes sooner.
            await store.prune_digests(
                conn, now - timedelta(days=self.policy.notification.digest.keep_days)
            )
            match_ids, notices = await store.expired(conn, cutoff)
            if not match_ids and not notices:
                return 0
            alerts = await store.forget_matches(conn, match_ids) + notices
            await self.runtime.audit.record(
                conn,
                action=AuditAction.DELETE,
                object_type="inbox-history",
                purpose=f"notification: retention removed {len(match_ids)} ended matches and "
                f"{alerts} alerts older than {self.policy.notification.keep_closed_days} days",
            )
        return alerts

    async def on_cell(self, cell: WijkTrendRaised | WijkThemeCounted) -> None:
        """Keep the anonymous wijk x theme counts (only cells of at least k ever arrive)."""
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            if await claim_message(conn, CONSUMER, cell.event_id):
                await store.add_trend_cell(
                    conn,
                    cell.wijk,
                    cell.theme.value,
                    cell.window,
                    cell.distinct_children,
                    isinstance(cell, WijkTrendRaised),
                )

    # --- follow-up -------------------------------------------------------------------

    async def reassign_orphans(self) -> int:
        """A match whose coordinator was deactivated, or whose team had no one eligible,
        gets one as soon as the roster allows; everyone involved is told."""
        moved = 0
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            for row in await store.orphaned(conn):
                await store.lock_match(conn, row["match_id"])
                after = await self.assign(conn, row["team_id"], row["family"])
                if after is None:
                    continue
                about = await store.about(conn, row["match_id"])
                await store.reassign(
                    conn,
                    row["match_id"],
                    wijk=row["wijk"],
                    team_id=row["team_id"],
                    coordinator_id=after.worker_id,
                )
                await self.runtime.audit.record(
                    conn,
                    action=AuditAction.ASSIGN,
                    object_type="match",
                    object_id=str(row["match_id"]),
                    subjects=list(about.subjects),
                    on_behalf_of=after.worker_id,
                    purpose=f"notification: new coordinator in team {row['team_id']} "
                    "(the previous one left, or none was eligible)",
                )
                recipients, organisations = await self.everyone_involved(
                    conn, row["match_id"], [after]
                )
                recipients += [(r, Part.REGIE) for r in await roster.regie(conn)]
                await self.issue(
                    conn,
                    alerts_to_all(
                        row["match_id"],
                        MatchKind(row["kind"]),
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

    # --- escalation --------------------------------------------------------------------

    async def escalate(self, now: datetime | None = None) -> int:
        """Alerts not acknowledged in time go on the overview of the match's team lead
        (the regie role's when the team has none); matches without contact in time on
        the regie role's. Each counts in their next digest e-mail: an overview, not an
        alert per match. Periods are working days (weekends and Dutch public holidays
        excluded), from the policy. Returns how many became overdue."""
        now = now or datetime.now(UTC)
        await self.reassign_orphans()
        periods = self.policy.escalation
        became = 0
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            regie = await roster.regie(conn)
            # N working days are at least N calendar days: a cheap bound for the query.
            late = await store.unacknowledged(
                conn, now - timedelta(days=periods.alert_unacknowledged_working_days)
            )
            for row in late:
                if not overdue(row["issued_at"], periods.alert_unacknowledged_working_days, now):
                    continue
                leads = await roster.team_leads(conn, row["team_id"]) if row["team_id"] else []
                await self.put_on_overview(
                    conn,
                    unacknowledged_overdue(row["alert_id"], row["match_id"], leads, regie),
                    # About the children the late alert was about.
                    list(row["subjects"]),
                    f"notification: alert {row['alert_id']} was not acknowledged in time",
                )
                await store.mark_alert_escalated(conn, row["alert_id"], now)
                ESCALATIONS.labels("unacknowledged").inc()
                became += 1
            quiet = await store.without_contact(
                conn, now - timedelta(days=periods.no_contact_working_days)
            )
            for row in quiet:
                if not overdue(row["raised_at"], periods.no_contact_working_days, now):
                    continue
                await self.put_on_overview(
                    conn,
                    no_contact_overdue(row["match_id"], regie),
                    await store.about_many(conn, [row["match_id"]]),
                    f"notification: no contact was recorded in time for match {row['match_id']}",
                )
                await store.mark_match_escalated(conn, row["match_id"], now)
                ESCALATIONS.labels("no-contact").inc()
                became += 1
        return became

    async def put_on_overview(
        self, conn: Conn, items: Sequence[Overdue], subjects: list[str], purpose: str
    ) -> None:
        """Overdue items: on their recipients' overview (live), counted in their next
        digest e-mail, and in the log for the children they point at."""
        if self.email:
            await store.queue_overdue(conn, items)
        for item in items:
            await self.runtime.audit.record(
                conn,
                action=AuditAction.NOTIFY,
                object_type="overdue",
                object_id=str(item.item_id),
                subjects=subjects,
                on_behalf_of=item.recipient.worker_id,
                purpose=f"{purpose}; on the overview of the {item.kind.value} follow-up",
            )
            await store.tell_live(conn, item.recipient.worker_id)


def register(runtime: ServiceRuntime, notifier: Notifier) -> None:
    runtime.consume(
        runtime.topics.matches,
        handlers={MatchRaised: notifier.on_raised},
        default=MatchRaised,
    )
    runtime.consume(
        runtime.topics.match_lifecycle,
        handlers={
            MatchJoined: notifier.on_joined,
            MatchLeft: lambda _, gone: notifier.on_left(gone),
            MatchDissolved: lambda _, ended: notifier.on_dissolved(ended),
            CoordinationTransferred: notifier.on_transferred,
            SubjectShredded: lambda _, shredded: notifier.on_erased(shredded),
            EarlierInvolvementNoticed: notifier.on_earlier,
        },
    )
    runtime.consume(
        runtime.topics.trends,
        handlers={
            WijkThemeCounted: lambda _, cell: notifier.on_cell(cell),
            WijkTrendRaised: lambda _, cell: notifier.on_cell(cell),
        },
        default=WijkThemeCounted,
    )

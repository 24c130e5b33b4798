"""Matching's use cases: what happens when a registration arrives, is withdrawn, or its
subject is erased; when time passes (retention); when a wijk count comes in. Each takes
a unit of work (repository, outbox and audit in one transaction) and a clock reading,
decides through the domain, and publishes the events. The same code runs in the service
(PostgreSQL, handlers.py) and in the replay for policy makers (memory, replay.py).

A subject whose data key is found shredded is erased, not an error.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from prometheus_client import Counter
from pydantic import ValidationError

from services.matching import trends
from services.matching.domain import (
    Decision,
    Dissolve,
    EndReason,
    Join,
    Leave,
    Raise,
    Registration,
    Transfer,
    archive_until,
    decide,
    end_reason_at,
    erased_at_partners_request,
    expires_at,
    family_links,
    over_age,
    withdrawal_end,
)
from services.matching.ports import Keys, StoredRegistration, UnitOfWork
from shared.contracts import (
    AuditAction,
    AuditOutcome,
    Category,
    CoordinationTransferred,
    EarlierInvolvementNoticed,
    ErasureReviewRequested,
    MatchContact,
    MatchDissolved,
    MatchJoined,
    MatchKind,
    MatchLeft,
    MatchParticipant,
    MatchRaised,
    RegistrationWithdrawn,
    SealedMatch,
    SealedNotice,
    SealedSignal,
    SealedTransfer,
    SignalAccepted,
    SubjectErased,
    SubjectErasureApproved,
    SubjectShredded,
    Topics,
    WijkThemeCounted,
    WijkTrendRaised,
    WorkerContact,
    age_limit_month_of,
    age_limit_start,
)
from shared.keystore import KeyShredded, SealBroken
from shared.policy import Policy

REGISTRATIONS = Counter("vroegsignaal_matching_registrations_total", "Registrations stored")
DECISIONS = Counter(
    "vroegsignaal_matching_decisions_total", "Match decisions", ["decision", "kind"]
)
ERASED = Counter(
    "vroegsignaal_matching_erased_total", "Events about subjects whose key was shredded"
)
ERASURE_REQUESTS = Counter(
    "vroegsignaal_matching_erasure_requests_total",
    "Partners' erasure requests: the subject went whole, or its erasure awaits review",
    ["outcome"],
)
ENDED = Counter(
    "vroegsignaal_matching_registrations_ended_total", "Registrations ended", ["reason"]
)
TRENDS = Counter("vroegsignaal_matching_trends_total", "Wijk trends raised")

# The ended registration's contact is not needed to end it; it is never stored or sent.
_NOBODY = WorkerContact(worker_id="-", display_name="-", email="nobody@invalid.example")


class Registered(StrEnum):
    """What became of an accepted signal."""

    STORED = "stored"
    ALREADY = "already"  # processed before (a redelivery) or the same registration again
    ERASED = "erased"  # its subject's key was shredded: the subject is erased
    NOT_AUTHORISED = "category-not-authorised"  # refused: dead-lettered by the caller
    OVER_AGE = "over-age"  # refused: dead-lettered by the caller
    SEAL_BROKEN = "seal-broken"  # refused, nothing claimed: dead-lettered by the caller


@dataclass(frozen=True)
class Refusal:
    """Why a signal was not registered, for the dead-letter record: names no one."""

    code: Registered
    reason: str


def _kept(reg: StoredRegistration) -> Registration:
    """A kept registration without its sealed fields: enough to end it."""
    return Registration(
        registration_id=reg.registration_id,
        subject=reg.subject,
        organisation=reg.organisation,
        organisation_category=reg.organisation_category,
        worker=_NOBODY,
        wijk="WK000000",
        registered_at=reg.registered_at,
        expires_at=reg.expires_at,
        age_limit_from=reg.age_limit_from,
        end_reason=reg.end_reason,
    )


def _regs(d: Decision) -> Sequence[Registration]:
    return d.remaining if isinstance(d, Dissolve) else d.participants


class Matching:
    """The matching service's use cases, under one policy."""

    def __init__(self, policy: Policy, keys: Keys, topics: Topics) -> None:
        self.policy = policy
        self.keys = keys
        self.topics = topics

    def stored(self, signal: SignalAccepted) -> StoredRegistration:
        """An accepted signal as matching keeps it: ending at the policy's age limit."""
        limit = age_limit_start(signal.age_limit_month, self.policy.retention.age_limit_years)
        return StoredRegistration(
            registration_id=signal.signal_id,
            subject=signal.subject,
            organisation=signal.organisation,
            organisation_category=signal.organisation_category,
            registered_at=signal.registered_at,
            expires_at=expires_at(
                signal.registered_at, limit, active_days=self.policy.retention.active_days
            ),
            age_limit_from=limit,
            sealed=signal.sealed,
            partner_id=signal.partner_id,
        )

    # --- use cases ------------------------------------------------------------------

    async def register(
        self, uow: UnitOfWork, signal: SignalAccepted, now: datetime
    ) -> Registered | Refusal:
        """Rules 3, 4 and 6: store the registration, notice earlier involvement once,
        link the family, and decide the person and family matches. A signal whose sealed
        fields do not open is refused unclaimed (the caller dead-letters it)."""
        stored = self.stored(signal)
        try:
            personal = await self.opened(stored)
        except KeyShredded:
            await uow.claim(signal.event_id)
            ERASED.inc()
            return Registered.ERASED
        except SealBroken as broken:
            return Refusal(Registered.SEAL_BROKEN, str(broken))
        refusal = self.refusal(signal, stored)
        if refusal is not None:
            if await uow.claim(signal.event_id):
                await uow.record(
                    action=AuditAction.REJECT,
                    outcome=AuditOutcome.DENIED,
                    object_type="registration",
                    object_id=str(signal.signal_id),
                    purpose=f"matching: {refusal.code.value} (policy {self.policy.version})",
                )
            return refusal
        if not await uow.claim(signal.event_id):
            return Registered.ALREADY
        repo = uow.repo
        await repo.lock([f"subject:{signal.subject}"])
        if not await repo.add_registration(stored):
            return Registered.ALREADY
        REGISTRATIONS.inc()
        await uow.record(
            action=AuditAction.CREATE,
            object_type="registration",
            object_id=str(stored.registration_id),
            subjects=[signal.subject],
            purpose="matching: register concern of a partner organisation",
        )
        earlier = await repo.unnoticed_archive(signal.subject, now)
        if earlier:
            await self.notice_earlier(uow, signal, personal.worker, earlier, now)
        links = family_links(personal.parents, personal.household, self.policy)
        if links:
            root, absorbed = await repo.join_family(signal.subject, links)
            if absorbed:
                await self.merge_family_matches(uow, root, absorbed, now)
        await self.reconsider(uow, signal.subject, now)
        return Registered.STORED

    def refusal(self, signal: SignalAccepted, stored: StoredRegistration) -> Refusal | None:
        if not self.policy.authorises(signal.organisation_category):
            return Refusal(
                Registered.NOT_AUTHORISED,
                f"the policy {self.policy.version} does not authorise "
                f"{signal.organisation_category.value} organisations to register",
            )
        if over_age(stored.age_limit_from, signal.registered_at):
            years = self.policy.retention.age_limit_years
            return Refusal(
                Registered.OVER_AGE,
                f"the youth reached the policy's age limit of {years} in or before the "
                f"month of registration (policy {self.policy.version}); nothing is kept",
            )
        return None

    async def withdraw(
        self, uow: UnitOfWork, withdrawn: RegistrationWithdrawn, now: datetime
    ) -> None:
        """Rule 5: the worker withdraws; resolved ones are archived, unjustified ones go."""
        if not await uow.claim(withdrawn.event_id):
            return
        repo = uow.repo
        stored = await repo.registration(withdrawn.registration_id)
        if stored is None:
            return
        # The registration's own subject, never the one the message claims.
        await repo.lock([f"subject:{stored.subject}"])
        stored = await repo.registration(withdrawn.registration_id)
        if stored is None:
            return
        reason = withdrawal_end(withdrawn.reason, stored.end_reason)
        if reason is None:
            return
        await self.end(uow, stored, reason, now)
        await self.reconsider(uow, stored.subject, now)
        if not reason.archived and await repo.subject_is_gone(stored.subject):
            await self.schedule_shred(
                uow, stored.subject, "withdrawn as unjustified", [stored.registration_id]
            )

    async def erase_for_partner(
        self, uow: UnitOfWork, erased: SubjectErased, now: datetime
    ) -> str | None:
        """A partner passed on a data subject's erasure request: that partner's own
        registrations of the subject end (none archived). Where that was all that was
        kept, the subject goes as a whole; where other organisations' registrations
        remain, erasing those is the privacy officer's decision, and audit lists it.
        Returns the outcome, or None for a message processed before."""
        if not await uow.claim(erased.event_id):
            return None
        repo = uow.repo
        await repo.lock([f"subject:{erased.subject}"])
        own = erased_at_partners_request(
            await repo.all_registrations(erased.subject), erased.partner_id
        )
        if not own:
            # Nothing of its own: a partner asks only for what it registered. No review
            # (it cannot start one about a child it never registered, nor learn whether
            # others did), no shredding.
            await uow.record(
                action=AuditAction.DELETE,
                outcome=AuditOutcome.FAILED,
                object_type="erasure-request",
                object_id=str(erased.request_id),
                subjects=[erased.subject],
                purpose=f"matching: partner {erased.partner_id} asked for erasure but "
                "keeps no registration of the subject; nothing erased",
            )
            ERASURE_REQUESTS.labels("none-of-its-own").inc()
            return "none-of-its-own"
        for stored in own:
            await self.end(uow, stored, EndReason.ERASED, now)
        await self.reconsider(uow, erased.subject, now)
        ended = [r.registration_id for r in own]
        remaining = await repo.organisations_of(erased.subject)
        if not remaining:
            await self.schedule_shred(
                uow,
                erased.subject,
                "the subject asked for erasure and no other organisation keeps anything",
                ended,
            )
            ERASURE_REQUESTS.labels("subject-erased").inc()
            return "subject-erased"
        await uow.publish(
            self.topics.audit_requests,
            ErasureReviewRequested(
                request_id=erased.request_id,
                subject=erased.subject,
                partner_id=erased.partner_id,
                requested_at=erased.requested_at,
                ended=len(ended),
                organisations_remaining=remaining,
            ),
        )
        await uow.record(
            action=AuditAction.DELETE,
            object_type="erasure-request",
            object_id=str(erased.request_id),
            subjects=[erased.subject],
            purpose=f"matching: erased {len(ended)} registrations of partner "
            f"{erased.partner_id} at the data subject's request; {remaining} other "
            "organisations' registrations await the privacy officer's decision",
        )
        ERASURE_REQUESTS.labels("review-requested").inc()
        return "review-requested"

    async def erase(
        self, uow: UnitOfWork, erased: SubjectErasureApproved | SubjectShredded, now: datetime
    ) -> None:
        """Erasure of the subject as a whole (approved by the privacy officer), or a data
        key an operator shredded: every registration of the subject goes (none archived),
        its matches dissolve, its place in a family goes, its data key is shredded, and
        notification is told after the dissolutions."""
        why = (
            f"the privacy officer approved erasing the subject ({erased.approved_by})"
            if isinstance(erased, SubjectErasureApproved)
            else f"its data key was shredded ({erased.reason})"
        )
        if not await uow.claim(erased.event_id):
            return
        await uow.repo.lock([f"subject:{erased.subject}"])
        gone = await uow.repo.all_registrations(erased.subject)
        for stored in gone:
            await self.end(uow, stored, EndReason.ERASED, now)
        await self.reconsider(uow, erased.subject, now)
        await self.schedule_shred(uow, erased.subject, why, [r.registration_id for r in gone])
        ERASED.inc()

    async def end_due(self, uow: UnitOfWork, now: datetime, limit: int = 500) -> int:
        """Retention: end what expired or reached the age limit by `now`, clear the
        archive past its period, and forget the subjects of whom nothing is kept. Returns
        how many registrations were due (a full `limit`: call again)."""
        repo = uow.repo
        to_shred: set[str] = set()
        due = await repo.due_to_end(now, limit)
        ended: dict[str, list[uuid.UUID]] = {}
        for stored in due:
            await repo.lock([f"subject:{stored.subject}"])
            reason = end_reason_at(_kept(stored), now)
            if reason is None:
                continue
            await self.end(uow, stored, reason, now)
            await self.reconsider(uow, stored.subject, now)
            ended.setdefault(stored.subject, []).append(stored.registration_id)
            if not reason.archived and await repo.subject_is_gone(stored.subject):
                to_shred.add(stored.subject)
        for registration_id, subject in await repo.archive_past(now, limit):
            await uow.record(
                action=AuditAction.DELETE,
                object_type="registration",
                object_id=str(registration_id),
                subjects=[subject],
                purpose=f"matching: archive period over (policy {self.policy.version})",
            )
            ended.setdefault(subject, []).append(registration_id)
            if await repo.subject_is_gone(subject):
                to_shred.add(subject)
        for subject in sorted(to_shred):
            await self.schedule_shred(
                uow, subject, "nothing of the subject is kept", ended.get(subject, [])
            )
        return len(due)

    async def shred(self, uow: UnitOfWork, subject: str) -> None:
        """Shred a data key decided to go, and take it off the queue; what a crash left
        queued goes at the next pass (shredding twice changes nothing)."""
        await self.keys.shred(subject)
        await uow.repo.shredded(subject)

    async def shred_pending(self, uow: UnitOfWork, limit: int = 500) -> int:
        """Every data key decided to go, in one unit of work (the replay's; the service
        commits each key on its own: handlers.py)."""
        pending = await uow.repo.pending_shreds(limit)
        for subject in pending:
            await self.shred(uow, subject)
        return len(pending)

    async def count(self, uow: UnitOfWork, counted: WijkThemeCounted) -> bool:
        """Take a wijk x theme week's count from intake (never under k); raise a trend
        when it rises clearly above the wijk's own baseline. True when one was raised."""
        if not await uow.claim(counted.event_id):
            return False
        repo = uow.repo
        theme = counted.theme.value
        await repo.lock([f"cell:{counted.wijk}/{theme}/{counted.window}"])
        count = await repo.set_count(counted.wijk, theme, counted.window, counted.distinct_children)
        if count is None:
            return False
        baseline = await repo.window_counts(
            counted.wijk,
            theme,
            trends.previous_windows(counted.window, self.policy.aggregates.baseline_windows),
        )
        trend = trends.detect(count, baseline, self.policy)
        if trend is None or not await repo.mark_trend(counted.wijk, theme, counted.window):
            return False
        await uow.publish(
            self.topics.trends,
            WijkTrendRaised(
                wijk=counted.wijk,
                theme=counted.theme,
                window=counted.window,
                distinct_children=trend.count,
                baseline=trend.baseline,
                p_value=trend.p_value,
                test=trend.test,
                policy_version=self.policy.version,
            ),
        )
        await uow.record(
            action=AuditAction.CREATE,
            object_type="wijk-trend",
            object_id=f"{counted.wijk}/{theme}/{counted.window}",
            purpose=f"matching: wijk trend, {trend.test} (policy {self.policy.version})",
        )
        TRENDS.inc()
        return True

    async def publish_counts(self, uow: UnitOfWork, batch: int = 500) -> int:
        """Publish the wijk x theme counts that changed, for the team leads' chart.
        Periodic, not per signal, so the counts do not reveal when one child was
        counted; cells under k are never published."""
        cells = await uow.repo.unpublished_cells(self.policy.aggregates.k, batch)
        for c in cells:
            await uow.publish(
                self.topics.trends,
                WijkThemeCounted(
                    wijk=c.wijk,
                    theme=Category(c.theme),
                    window=c.window,
                    distinct_children=c.children,
                    policy_version=self.policy.version,
                ),
            )
            await uow.repo.mark_published(c.wijk, c.theme, c.window, c.children)
        return len(cells)

    # --- the steps they share -----------------------------------------------------------

    async def opened(self, stored: StoredRegistration) -> SealedSignal:
        """Its sealed fields; SealBroken (without them) when they are not a SealedSignal."""
        opened = await self.keys.open_sealed(
            stored.subject, stored.registration_id.bytes, stored.sealed
        )
        try:
            return SealedSignal.model_validate_json(opened)
        except ValidationError:
            # Never the error itself: pydantic's message quotes the opened content.
            raise SealBroken("the sealed fields are not a SealedSignal") from None

    async def live(
        self, uow: UnitOfWork, subjects: Sequence[str], now: datetime
    ) -> list[Registration]:
        """The live registrations of `subjects`, opened. A subject whose data key is found
        shredded (by any route) is erased here, as on its erasure: every registration
        ends, and notification hears of it with the family's key replaced."""
        repo = uow.repo
        result = []
        shredded: set[str] = set()
        for stored in await repo.live_registrations(subjects):
            try:
                personal = await self.opened(stored)
            except KeyShredded:
                shredded.add(stored.subject)
                continue
            result.append(
                Registration(
                    registration_id=stored.registration_id,
                    subject=stored.subject,
                    organisation=stored.organisation,
                    organisation_category=stored.organisation_category,
                    worker=personal.worker,
                    wijk=personal.wijk,
                    registered_at=stored.registered_at,
                    expires_at=stored.expires_at,
                    age_limit_from=stored.age_limit_from,
                    end_reason=stored.end_reason,
                    reference=personal.reference,
                    partner_registration=personal.partner_registration,
                )
            )
        for subject in sorted(shredded):
            ended = []
            for stored in await repo.all_registrations(subject):
                try:
                    await self.opened(stored)
                except KeyShredded:
                    await self.end(uow, stored, EndReason.ERASED, now)
                    ended.append(stored.registration_id)
            if await repo.subject_is_gone(subject):
                await self.schedule_shred(uow, subject, "its data key was found shredded", ended)
            else:
                # Registered again since (under a new key): the family's key still goes.
                await self.retire_family_key(uow, subject)
        return result

    async def end(
        self, uow: UnitOfWork, stored: StoredRegistration, reason: EndReason, now: datetime
    ) -> None:
        repo = uow.repo
        reg = _kept(stored).ended(reason, now)
        until = archive_until(reg, self.policy)
        # A registration that is not archived goes with its places in matches at once;
        # notification hears that it left the matches that go on (an archived one leaves
        # when the match is next decided).
        matches = [] if until is not None else await repo.open_matches_with(reg.registration_id)
        await repo.end_registration(stored.registration_id, reason, now, until)
        why = f"registration ended ({reason.value})"
        for m in matches:
            if stored.subject not in await repo.match_subjects(m.match_id):
                await self.left(uow, m.match_id, m.kind, {stored.subject}, why)
            remaining = await repo.participant_ids(m.match_id)
            if remaining:
                await uow.publish(
                    self.topics.match_lifecycle,
                    MatchLeft(
                        match_id=m.match_id,
                        kind=m.kind,
                        key=m.key,
                        left=[reg.registration_id],
                        remaining=remaining,
                        rule=why,
                        policy_version=self.policy.version,
                        left_at=now,
                    ),
                )
        ENDED.labels(reason.value).inc()
        await uow.record(
            action=AuditAction.UPDATE if reason.archived else AuditAction.DELETE,
            object_type="registration",
            object_id=str(stored.registration_id),
            subjects=[stored.subject],
            purpose=f"matching: registration ended ({reason.value}, policy {self.policy.version})",
        )

    async def reconsider(self, uow: UnitOfWork, subject: str, now: datetime) -> list[Decision]:
        """Decide the person match of `subject` and the family match of its cluster."""
        repo = uow.repo
        regs = await self.live(uow, [subject], now)
        wijk_of = {r.registration_id: r.wijk for r in regs}
        decisions = decide(
            MatchKind.PERSON,
            subject,
            regs,
            await repo.open_match(MatchKind.PERSON, subject, wijk_of),
            self.policy,
            now,
        )
        family = self.policy.matching.family.enabled
        root = await repo.family_root(subject)
        while root is not None and family:
            await repo.lock([f"cluster:{root}"])
            current = await repo.family_root(subject)
            if current == root:
                break
            root = current  # merged meanwhile: lock the cluster it is in now
        if root is not None and family:
            members = await repo.family_subjects(root)
            kin = await self.live(uow, members, now) if len(members) > 1 else regs
            wijk_of.update({r.registration_id: r.wijk for r in kin})
            decisions += decide(
                MatchKind.FAMILY,
                root,
                kin,
                await repo.open_match(MatchKind.FAMILY, root, wijk_of),
                self.policy,
                now,
            )
        await self.apply(uow, decisions, now)
        return decisions

    async def notice_earlier(
        self,
        uow: UnitOfWork,
        signal: SignalAccepted,
        worker: WorkerContact,
        earlier: Sequence[tuple[uuid.UUID, str]],
        now: datetime,
    ) -> None:
        """Rule 6: a one-time notice of earlier involvement to the new registration."""
        await uow.repo.mark_noticed([i for i, _ in earlier], now)
        notice_id = uuid.uuid4()
        notice = SealedNotice(
            worker=worker,
            organisation=signal.organisation,
            earlier_organisations=sorted({org for _, org in earlier}),
        )
        await uow.publish(
            self.topics.match_lifecycle,
            EarlierInvolvementNoticed(
                event_id=notice_id,
                registration_id=signal.signal_id,
                subject=signal.subject,
                sealed=await self.keys.seal(
                    signal.subject,
                    notice_id.bytes,
                    notice.model_dump_json().encode(),
                    create=False,
                ),
                noticed_at=now,
            ),
        )
        await uow.record(
            action=AuditAction.NOTIFY,
            object_type="earlier-involvement",
            object_id=str(signal.signal_id),
            subjects=[signal.subject],
            purpose=f"matching: one-time notice of {len(earlier)} archived registrations",
        )

    async def sealed_under(self, uow: UnitOfWork, kind: MatchKind, key: str) -> str:
        """Whose data key seals a match's events: the subject's (a person match), or the
        family cluster's own (a family match): never one child's for the whole family,
        whose erasure would then leave its siblings' contacts readable, or take theirs."""
        return key if kind is MatchKind.PERSON else await uow.repo.family_key(key)

    async def sealed_contacts(self, uow: UnitOfWork, d: Raise | Join) -> tuple[str, str]:
        """(name of the key that seals it, sealed contacts).

        The family key lets notification keep one coordinator per family."""
        newest = d.participants[-1]
        root = d.key if d.kind is MatchKind.FAMILY else await uow.repo.family_root(d.key)
        contacts = SealedMatch(
            wijk=newest.wijk,
            contacts=[
                MatchContact(
                    registration_id=p.registration_id,
                    subject=p.subject,
                    worker=p.worker,
                    organisation=p.organisation,
                    organisation_category=p.organisation_category,
                    # The contract's month (turning 23), whatever the policy's age limit.
                    age_limit_month=(
                        age_limit_month_of(p.age_limit_from, self.policy.retention.age_limit_years)
                        if p.age_limit_from
                        else None
                    ),
                    registered_at=p.registered_at,
                    reference=p.reference,
                    partner_registration=p.partner_registration,
                )
                for p in d.participants
            ],
            family=root,
        )
        return await self.sealed_under(uow, d.kind, d.key), contacts.model_dump_json()

    async def seal(self, subject: str, event_id: uuid.UUID, content: str, kind: MatchKind) -> str:
        # A family cluster's key is made when its first family match is sealed.
        return await self.keys.seal(
            subject, event_id.bytes, content.encode(), create=kind is MatchKind.FAMILY
        )

    async def apply(self, uow: UnitOfWork, decisions: Sequence[Decision], now: datetime) -> None:
        repo = uow.repo
        lifecycle = self.topics.match_lifecycle
        for d in decisions:
            event_id = uuid.uuid4()
            # Who took part before the decision: the report of a subject who leaves names
            # the end of its part (the decision itself names only who stays).
            before = (
                await repo.match_subjects(d.match_id) if isinstance(d, Leave | Dissolve) else set()
            )
            participants = [
                MatchParticipant(registration_id=p.registration_id, organisation=p.organisation)
                for p in _regs(d)
            ]
            if isinstance(d, Raise):
                if not await repo.add_match(d, now):
                    continue
                subject, contacts = await self.sealed_contacts(uow, d)
                await uow.publish(
                    self.topics.matches,
                    MatchRaised(
                        event_id=event_id,
                        match_id=d.match_id,
                        kind=d.kind,
                        key=d.key,
                        subject=subject,
                        participants=participants,
                        sealed=await self.seal(subject, event_id, contacts, d.kind),
                        rule=d.rule,
                        policy_version=d.policy_version,
                        raised_at=now,
                    ),
                )
                action, what = AuditAction.CREATE, "raised"
            elif isinstance(d, Join):
                await repo.add_participants(d.match_id, d.newcomers)
                subject, contacts = await self.sealed_contacts(uow, d)
                await uow.publish(
                    lifecycle,
                    MatchJoined(
                        event_id=event_id,
                        match_id=d.match_id,
                        kind=d.kind,
                        key=d.key,
                        subject=subject,
                        newcomers=[r.registration_id for r in d.newcomers],
                        participants=participants,
                        sealed=await self.seal(subject, event_id, contacts, d.kind),
                        rule=d.rule,
                        policy_version=d.policy_version,
                        joined_at=now,
                    ),
                )
                action, what = AuditAction.UPDATE, "joined"
            elif isinstance(d, Leave):
                await repo.remove_participants(d.match_id, d.left)
                await uow.publish(
                    lifecycle,
                    MatchLeft(
                        event_id=event_id,
                        match_id=d.match_id,
                        kind=d.kind,
                        key=d.key,
                        left=list(d.left),
                        remaining=[r.registration_id for r in d.participants],
                        rule=d.rule,
                        policy_version=d.policy_version,
                        left_at=now,
                    ),
                )
                action, what = AuditAction.UPDATE, "left by ended registrations"
            elif isinstance(d, Dissolve):
                await repo.close_match(d.match_id, "dissolved", now)
                await uow.publish(
                    lifecycle,
                    MatchDissolved(
                        event_id=event_id,
                        match_id=d.match_id,
                        kind=d.kind,
                        key=d.key,
                        reason="the rule no longer holds",
                        remaining=[r.registration_id for r in d.remaining],
                        rule=d.rule,
                        policy_version=d.policy_version,
                        dissolved_at=now,
                    ),
                )
                action, what = AuditAction.DELETE, "dissolved"
            else:
                assert isinstance(d, Transfer)
                subject = await self.sealed_under(uow, d.kind, d.key)
                transfer = SealedTransfer(from_wijk=d.from_wijk, to_wijk=d.to_wijk)
                await uow.publish(
                    lifecycle,
                    CoordinationTransferred(
                        event_id=event_id,
                        match_id=d.match_id,
                        kind=d.kind,
                        key=d.key,
                        subject=subject,
                        sealed=await self.seal(
                            subject, event_id, transfer.model_dump_json(), d.kind
                        ),
                        rule=d.rule,
                        policy_version=d.policy_version,
                        transferred_at=now,
                    ),
                )
                action, what = AuditAction.ASSIGN, "coordination transferred"
            DECISIONS.labels(type(d).__name__.lower(), d.kind.value).inc()
            counted = ", ".join(str(p.registration_id) for p in participants)
            staying = {p.subject for p in _regs(d)}
            await uow.record(
                action=action,
                object_type="match",
                object_id=str(d.match_id),
                subjects=sorted(staying | before),
                purpose=(
                    f"matching: {d.kind.value} match {what}: {d.rule}; policy "
                    f"{d.policy_version}; counted {counted}"
                )[:1000],
            )
            if isinstance(d, Leave):
                await self.left(uow, d.match_id, d.kind, before - staying, d.rule)

    async def left(
        self, uow: UnitOfWork, match_id: uuid.UUID, kind: MatchKind, subjects: set[str], why: str
    ) -> None:
        """The match goes on without these subjects: for each, their part in it ended."""
        if subjects:
            await uow.record(
                action=AuditAction.DELETE,
                object_type="match",
                object_id=str(match_id),
                subjects=sorted(subjects),
                purpose=f"matching: {kind.value} match ended for this subject: {why}"[:1000],
            )

    async def merge_family_matches(
        self, uow: UnitOfWork, root: str, absorbed: Sequence[str], now: datetime
    ) -> None:
        """After clusters merge, one open family match stays (the oldest), under the root.
        The absorbed clusters' keys go: what was sealed under them is for matches that end
        here, and the merged cluster's matches are sealed under the root's key."""
        repo = uow.repo
        for cluster in absorbed:
            await self.shred_family_key(uow, cluster, "merged into another family cluster")
        open_ids = await repo.open_family_matches([root, *absorbed])
        if not open_ids:
            return
        keep, *merged = open_ids
        for match_id in merged:
            await uow.record(
                action=AuditAction.DELETE,
                object_type="match",
                object_id=str(match_id),
                subjects=sorted(await repo.match_subjects(match_id)),
                purpose=f"matching: family match dissolved: merged into family match {keep} "
                f"(rule 4); policy {self.policy.version}",
            )
            await repo.close_match(match_id, "merged", now)
            await uow.publish(
                self.topics.match_lifecycle,
                MatchDissolved(
                    match_id=match_id,
                    kind=MatchKind.FAMILY,
                    key=root,
                    reason=f"merged into family match {keep}",
                    remaining=[],
                    rule="family clusters merged (rule 4)",
                    policy_version=self.policy.version,
                    dissolved_at=now,
                ),
            )
        await repo.rekey_family_match(keep, root)

    async def schedule_shred(
        self, uow: UnitOfWork, subject: str, why: str, registrations: Sequence[uuid.UUID] = ()
    ) -> None:
        """In the deciding unit of work: forget the subject, audit, queue the shredding,
        and tell notification, which holds opened copies of the subject's sealed fields.
        The subject's family cluster gets a new key and its old one is shredded too: the
        family matches sealed under it hold this subject's contacts."""
        await self.retire_family_key(uow, subject)
        await uow.repo.forget_subject(subject)
        await uow.repo.schedule_shred(subject)
        await uow.publish(
            self.topics.match_lifecycle,
            SubjectShredded(subject=subject, reason=why, registrations=list(registrations)),
        )
        await uow.record(
            action=AuditAction.SHRED,
            object_type="data-key",
            subjects=[subject],
            purpose=f"matching: {why}; its data key is shredded",
        )

    async def retire_family_key(self, uow: UnitOfWork, subject: str) -> None:
        """The key of the subject's family cluster goes (shredded with the next pending
        shreds); the family's next match event is sealed under a new one."""
        cluster = await uow.repo.family_root(subject)
        if cluster is not None:
            await self.shred_family_key(uow, cluster, "a child of the family was erased")

    async def shred_family_key(self, uow: UnitOfWork, cluster: str, why: str) -> None:
        """Unlist a cluster's key, queue its shredding, and log it by its name (random:
        it names no one), so that `keystore reshred` can shred it again after a restore."""
        retired = await uow.repo.retire_family_key(cluster)
        if retired is None:
            return
        await uow.repo.schedule_shred(retired)
        await uow.record(
            action=AuditAction.SHRED,
            object_type="family-key",
            object_id=retired,
            purpose=f"matching: a family cluster's key is shredded: {why}",
        )

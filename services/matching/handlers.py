"""Matching: registrations in, decisions out. decode -> open sealed fields -> lock ->
store -> decide (domain) -> seal -> outbox -> ack. A subject whose key was shredded is
erased, not an error. The retention job ends what expired and clears the archive."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from faststream.kafka import KafkaMessage
from prometheus_client import Counter

from services.matching import store, trends
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
    expires_at,
    family_links,
    withdrawal_end,
)
from shared.contracts import (
    AuditAction,
    AuditOutcome,
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
    WijkThemeCounted,
    WijkTrendRaised,
    WorkerContact,
    month_of,
    month_start,
)
from shared.db import Conn, claim_message
from shared.keystore import KeyShredded, SealBroken
from shared.outbox import enqueue
from shared.policy import Policy
from shared.service import ServiceRuntime

CONSUMER = "matching"

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


class Matcher:
    def __init__(self, runtime: ServiceRuntime, policy: Policy) -> None:
        self.runtime = runtime
        self.policy = policy

    async def opened(self, stored: store.StoredRegistration) -> tuple[Registration, SealedSignal]:
        personal = SealedSignal.model_validate_json(
            await self.runtime.keystore.open_sealed(
                stored.subject, stored.registration_id.bytes, stored.sealed
            )
        )
        return (
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
            ),
            personal,
        )

    async def live(self, conn: Conn, subjects: Sequence[str], now: datetime) -> list[Registration]:
        """The live registrations of `subjects`. A subject whose data key is found
        shredded (by any route) is erased here, as on its erasure: every registration ends,
        and notification hears of it with the family's key replaced (schedule_shred)."""
        result = []
        shredded: set[str] = set()
        for stored in await store.live_registrations(conn, subjects):
            try:
                result.append((await self.opened(stored))[0])
            except KeyShredded:
                shredded.add(stored.subject)
        for subject in sorted(shredded):
            ended = []
            for stored in await store.all_registrations(conn, subject):
                try:
                    await self.opened(stored)
                except KeyShredded:
                    await self.end(conn, stored, EndReason.ERASED, now)
                    ended.append(stored.registration_id)
            if await store.subject_is_gone(conn, subject):
                await self.schedule_shred(conn, subject, "its data key was found shredded", ended)
            else:
                # Registered again since (under a new key): the family's key still goes.
                await self.retire_family_key(conn, subject)
        return result

    async def end(
        self, conn: Conn, stored: store.StoredRegistration, reason: EndReason, now: datetime
    ) -> None:
        reg = Registration(
            registration_id=stored.registration_id,
            subject=stored.subject,
            organisation=stored.organisation,
            worker=_NOBODY,
            wijk="WK000000",
            registered_at=stored.registered_at,
            expires_at=stored.expires_at,
            age_limit_from=stored.age_limit_from,
        ).ended(reason, now)
        until = archive_until(reg, self.policy)
        # A registration that is not archived goes with its places in matches at once;
        # notification hears that it left the matches that go on (an archived one leaves
        # when the match is next decided).
        matches = (
            [] if until is not None else await store.open_matches_with(conn, reg.registration_id)
        )
        await store.end_registration(conn, stored.registration_id, reason, now, until)
        for m in matches:
            if stored.subject not in await store.match_subjects(conn, m["match_id"]):
                await self.left(
                    conn,
                    m["match_id"],
                    MatchKind(m["kind"]),
                    {stored.subject},
                    f"registration ended ({reason.value})",
                )
            remaining = await store.participant_ids(conn, m["match_id"])
            if remaining:
                kind = MatchKind(m["kind"])
                await enqueue(
                    conn,
                    self.runtime.topics.match_lifecycle,
                    MatchLeft(
                        match_id=m["match_id"],
                        kind=kind,
                        key=m["key"],
                        left=[reg.registration_id],
                        remaining=remaining,
                        rule=f"registration ended ({reason.value})",
                        policy_version=self.policy.version,
                        left_at=now,
                    ),
                )
        ENDED.labels(reason.value).inc()
        await self.runtime.audit.record(
            conn,
            action=AuditAction.UPDATE if reason.archived else AuditAction.DELETE,
            object_type="registration",
            object_id=str(stored.registration_id),
            subjects=[stored.subject],
            purpose=f"matching: registration ended ({reason.value}, policy {self.policy.version})",
        )

    async def reconsider(self, conn: Conn, subject: str, now: datetime) -> list[Decision]:
        """Decide the person match of `subject` and the family match of its cluster."""
        regs = await self.live(conn, [subject], now)
        wijk_of = {r.registration_id: r.wijk for r in regs}
        decisions = decide(
            MatchKind.PERSON,
            subject,
            regs,
            await store.open_match(conn, MatchKind.PERSON, subject, wijk_of),
            self.policy,
            now,
        )
        root = await store.family_root(conn, subject)
        while root is not None and self.policy.matching.family.enabled:
            await store.lock(conn, [f"cluster:{root}"])
            current = await store.family_root(conn, subject)
            if current == root:
                break
            root = current  # merged meanwhile: lock the cluster it is in now
        if root is not None and self.policy.matching.family.enabled:
            members = await store.family_subjects(conn, root)
            family = await self.live(conn, members, now) if len(members) > 1 else regs
            wijk_of.update({r.registration_id: r.wijk for r in family})
            decisions += decide(
                MatchKind.FAMILY,
                root,
                family,
                await store.open_match(conn, MatchKind.FAMILY, root, wijk_of),
                self.policy,
                now,
            )
        await self.apply(conn, decisions, now)
        return decisions

    async def sealed_under(self, conn: Conn, kind: MatchKind, key: str) -> str:
        """Whose data key seals a match's events: the subject's (a person match), or the
        family cluster's own (a family match): never one child's for the whole family,
        whose erasure would then leave its siblings' contacts readable, or take theirs."""
        return key if kind is MatchKind.PERSON else await store.family_key(conn, key)

    async def sealed_contacts(self, conn: Conn, d: Raise | Join) -> tuple[str, str]:
        """(name of the key that seals it, sealed contacts).

        The family key lets notification keep one coordinator per family."""
        newest = d.participants[-1]
        root = d.key if d.kind is MatchKind.FAMILY else await store.family_root(conn, d.key)
        contacts = SealedMatch(
            wijk=newest.wijk,
            contacts=[
                MatchContact(
                    registration_id=p.registration_id,
                    subject=p.subject,
                    worker=p.worker,
                    organisation=p.organisation,
                    organisation_category=p.organisation_category,
                    age_limit_month=month_of(p.age_limit_from) if p.age_limit_from else None,
                    registered_at=p.registered_at,
                    reference=p.reference,
                    partner_registration=p.partner_registration,
                )
                for p in d.participants
            ],
            family=root,
        )
        return await self.sealed_under(conn, d.kind, d.key), contacts.model_dump_json()

    async def apply(self, conn: Conn, decisions: Sequence[Decision], now: datetime) -> None:
        keystore = self.runtime.keystore
        topics = self.runtime.topics
        for d in decisions:
            event_id = uuid.uuid4()
            # The subject (a person match) or the family cluster's random id.
            key = d.key
            # A family cluster's key is made when its first family match is sealed.
            family = d.kind is MatchKind.FAMILY
            # Who took part before the decision: the report of a subject who leaves names
            # the end of its part (the decision itself names only who stays).
            before = (
                await store.match_subjects(conn, d.match_id)
                if isinstance(d, Leave | Dissolve)
                else set()
            )
            participants = [
                MatchParticipant(registration_id=p.registration_id, organisation=p.organisation)
                for p in (d.remaining if isinstance(d, Dissolve) else d.participants)
            ]
            if isinstance(d, Raise):
                if not await store.add_match(conn, d):
                    continue
                subject, contacts = await self.sealed_contacts(conn, d)
                await enqueue(
                    conn,
                    topics.matches,
                    MatchRaised(
                        event_id=event_id,
                        match_id=d.match_id,
                        kind=d.kind,
                        key=key,
                        subject=subject,
                        participants=participants,
                        sealed=await keystore.seal(
                            subject, event_id.bytes, contacts.encode(), create=family
                        ),
                        rule=d.rule,
                        policy_version=d.policy_version,
                        raised_at=now,
                    ),
                )
                action, what = AuditAction.CREATE, "raised"
            elif isinstance(d, Join):
                await store.add_participants(conn, d.match_id, d.newcomers)
                subject, contacts = await self.sealed_contacts(conn, d)
                await enqueue(
                    conn,
                    topics.match_lifecycle,
                    MatchJoined(
                        event_id=event_id,
                        match_id=d.match_id,
                        kind=d.kind,
                        key=key,
                        subject=subject,
                        newcomers=[r.registration_id for r in d.newcomers],
                        participants=participants,
                        sealed=await keystore.seal(
                            subject, event_id.bytes, contacts.encode(), create=family
                        ),
                        rule=d.rule,
                        policy_version=d.policy_version,
                        joined_at=now,
                    ),
                )
                action, what = AuditAction.UPDATE, "joined"
            elif isinstance(d, Leave):
                await store.remove_participants(conn, d.match_id, d.left)
                await enqueue(
                    conn,
                    topics.match_lifecycle,
                    MatchLeft(
                        event_id=event_id,
                        match_id=d.match_id,
                        kind=d.kind,
                        key=key,
                        left=list(d.left),
                        remaining=[r.registration_id for r in d.participants],
                        rule=d.rule,
                        policy_version=d.policy_version,
                        left_at=now,
                    ),
                )
                action, what = AuditAction.UPDATE, "left by ended registrations"
            elif isinstance(d, Dissolve):
                await store.close_match(conn, d.match_id, "dissolved", now)
                await enqueue(
                    conn,
                    topics.match_lifecycle,
                    MatchDissolved(
                        event_id=event_id,
                        match_id=d.match_id,
                        kind=d.kind,
                        key=key,
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
                subject = await self.sealed_under(conn, d.kind, d.key)
                transfer = SealedTransfer(from_wijk=d.from_wijk, to_wijk=d.to_wijk)
                await enqueue(
                    conn,
                    topics.match_lifecycle,
                    CoordinationTransferred(
                        event_id=event_id,
                        match_id=d.match_id,
                        kind=d.kind,
                        key=key,
                        subject=subject,
                        sealed=await keystore.seal(
                            subject,
                            event_id.bytes,
                            transfer.model_dump_json().encode(),
                            create=family,
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
            await self.runtime.audit.record(
                conn,
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
                await self.left(conn, d.match_id, d.kind, before - staying, d.rule)

    async def left(
        self, conn: Conn, match_id: uuid.UUID, kind: MatchKind, subjects: set[str], why: str
    ) -> None:
        """The match goes on without these subjects: for each, their part in it ended."""
        if subjects:
            await self.runtime.audit.record(
                conn,
                action=AuditAction.DELETE,
                object_type="match",
                object_id=str(match_id),
                subjects=sorted(subjects),
                purpose=f"matching: {kind.value} match ended for this subject: {why}"[:1000],
            )

    async def merge_family_matches(
        self, conn: Conn, root: str, absorbed: Sequence[str], now: datetime
    ) -> None:
        """After clusters merge, one open family match stays (the oldest), under the root.
        The absorbed clusters' keys go: what was sealed under them is for matches that end
        here, and the merged cluster's matches are sealed under the root's key."""
        for cluster in absorbed:
            await self.shred_family_key(conn, cluster, "merged into another family cluster")
        open_ids = await store.open_family_matches(conn, [root, *absorbed])
        if not open_ids:
            return
        keep, *merged = open_ids
        for match_id in merged:
            await self.runtime.audit.record(
                conn,
                action=AuditAction.DELETE,
                object_type="match",
                object_id=str(match_id),
                subjects=sorted(await store.match_subjects(conn, match_id)),
                purpose=f"matching: family match dissolved: merged into family match {keep} "
                f"(rule 4); policy {self.policy.version}",
            )
            await store.close_match(conn, match_id, "merged", now)
            await enqueue(
                conn,
                self.runtime.topics.match_lifecycle,
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
        await store.rekey_family_match(conn, keep, root)

    async def on_accepted(self, signal: SignalAccepted, message: KafkaMessage) -> None:
        runtime = self.runtime
        stored = store.StoredRegistration(
            registration_id=signal.signal_id,
            subject=signal.subject,
            organisation=signal.organisation,
            organisation_category=signal.organisation_category,
            registered_at=signal.registered_at,
            expires_at=expires_at(
                signal.registered_at,
                month_start(signal.age_limit_month),
                active_days=self.policy.retention.active_days,
            ),
            age_limit_from=month_start(signal.age_limit_month),
            sealed=signal.sealed,
            partner_id=signal.partner_id,
        )
        now = datetime.now(UTC)
        try:
            _, personal = await self.opened(stored)
        except KeyShredded:
            ERASED.inc()
            async with runtime.pool.acquire() as conn, conn.transaction():
                await claim_message(conn, CONSUMER, signal.event_id)
            return
        except SealBroken as broken:
            await runtime.dead_letters.send(message, "seal-broken", str(broken))
            return
        if not self.policy.authorises(signal.organisation_category):
            async with runtime.pool.acquire() as conn, conn.transaction():
                if await claim_message(conn, CONSUMER, signal.event_id):
                    await runtime.audit.record(
                        conn,
                        action=AuditAction.REJECT,
                        outcome=AuditOutcome.DENIED,
                        object_type="registration",
                        object_id=str(signal.signal_id),
                        purpose=f"matching: category not authorised ({self.policy.version})",
                    )
            await runtime.dead_letters.send(
                message,
                "category-not-authorised",
                f"the policy {self.policy.version} does not authorise "
                f"{signal.organisation_category.value} organisations to register",
            )
            return
        links = family_links(personal.parents, personal.household, self.policy)
        async with runtime.pool.acquire() as conn, conn.transaction():
            if not await claim_message(conn, CONSUMER, signal.event_id):
                return
            await store.lock(conn, [f"subject:{signal.subject}"])
            if not await store.add_registration(conn, stored):
                return
            REGISTRATIONS.inc()
            await runtime.audit.record(
                conn,
                action=AuditAction.CREATE,
                object_type="registration",
                object_id=str(stored.registration_id),
                subjects=[signal.subject],
                purpose="matching: register concern of a partner organisation",
            )
            earlier = await store.unnoticed_archive(conn, signal.subject, now)
            if earlier:
                # Rule 6: a one-time notice of earlier involvement to the new registration.
                await store.mark_noticed(conn, [i for i, _ in earlier], now)
                notice_id = uuid.uuid4()
                await enqueue(
                    conn,
                    runtime.topics.match_lifecycle,
                    EarlierInvolvementNoticed(
                        event_id=notice_id,
                        registration_id=stored.registration_id,
                        subject=signal.subject,
                        sealed=await runtime.keystore.seal(
                            signal.subject,
                            notice_id.bytes,
                            SealedNotice(
                                worker=personal.worker,
                                organisation=signal.organisation,
                                earlier_organisations=sorted({org for _, org in earlier}),
                            )
                            .model_dump_json()
                            .encode(),
                            create=False,
                        ),
                        noticed_at=now,
                    ),
                )
                await runtime.audit.record(
                    conn,
                    action=AuditAction.NOTIFY,
                    object_type="earlier-involvement",
                    object_id=str(stored.registration_id),
                    subjects=[signal.subject],
                    purpose=f"matching: one-time notice of {len(earlier)} archived registrations",
                )
            if links:
                root, absorbed = await store.join_family(conn, signal.subject, links)
                if absorbed:
                    await self.merge_family_matches(conn, root, absorbed, now)
            await self.reconsider(conn, signal.subject, now)

    async def on_partner_erasure(self, erased: SubjectErased) -> None:
        """A partner passed on a data subject's erasure request: that partner's own
        registrations of the subject end (none archived). Where that was all that was
        kept, the subject goes as a whole; where other organisations' registrations
        remain, erasing those is the privacy officer's decision, and audit lists it."""
        now = datetime.now(UTC)
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            if not await claim_message(conn, CONSUMER, erased.event_id):
                return
            await store.lock(conn, [f"subject:{erased.subject}"])
            own = [
                r
                for r in await store.all_registrations(conn, erased.subject)
                if r.partner_id == erased.partner_id
            ]
            if not own:
                # Nothing of its own: a partner asks only for what it registered. No
                # review (it cannot start one about a child it never registered, nor
                # learn whether others did), no shredding.
                await self.runtime.audit.record(
                    conn,
                    action=AuditAction.DELETE,
                    outcome=AuditOutcome.FAILED,
                    object_type="erasure-request",
                    object_id=str(erased.request_id),
                    subjects=[erased.subject],
                    purpose=f"matching: partner {erased.partner_id} asked for erasure but "
                    "keeps no registration of the subject; nothing erased",
                )
                ERASURE_REQUESTS.labels("none-of-its-own").inc()
                return
            for stored in own:
                await self.end(conn, stored, EndReason.ERASED, now)
            await self.reconsider(conn, erased.subject, now)
            ended = [r.registration_id for r in own]
            remaining = await store.organisations_of(conn, erased.subject)
            if not remaining:
                await self.schedule_shred(
                    conn,
                    erased.subject,
                    "the subject asked for erasure and no other organisation keeps anything",
                    ended,
                )
            else:
                await enqueue(
                    conn,
                    self.runtime.topics.audit_requests,
                    ErasureReviewRequested(
                        request_id=erased.request_id,
                        subject=erased.subject,
                        partner_id=erased.partner_id,
                        requested_at=erased.requested_at,
                        ended=len(ended),
                        organisations_remaining=remaining,
                    ),
                )
                await self.runtime.audit.record(
                    conn,
                    action=AuditAction.DELETE,
                    object_type="erasure-request",
                    object_id=str(erased.request_id),
                    subjects=[erased.subject],
                    purpose=f"matching: erased {len(ended)} registrations of partner "
                    f"{erased.partner_id} at the data subject's request; {remaining} other "
                    "organisations' registrations await the privacy officer's decision",
                )
        ERASURE_REQUESTS.labels("review-requested" if remaining else "subject-erased").inc()
        await self.shred_pending()

    async def on_erased(self, erased: SubjectErasureApproved | SubjectShredded) -> None:
        """Erasure of the subject as a whole (approved by the privacy officer), or a data
        key an operator shredded: every registration of the subject goes (none archived),
        its matches dissolve, its place in a family goes, its data key is shredded, and
        notification is told after the dissolutions."""
        why = (
            f"the privacy officer approved erasing the subject ({erased.approved_by})"
            if isinstance(erased, SubjectErasureApproved)
            else f"its data key was shredded ({erased.reason})"
        )
        now = datetime.now(UTC)
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            if not await claim_message(conn, CONSUMER, erased.event_id):
                return
            await store.lock(conn, [f"subject:{erased.subject}"])
            gone = await store.all_registrations(conn, erased.subject)
            for stored in gone:
                await self.end(conn, stored, EndReason.ERASED, now)
            await self.reconsider(conn, erased.subject, now)
            await self.schedule_shred(conn, erased.subject, why, [r.registration_id for r in gone])
        ERASED.inc()
        await self.shred_pending()

    async def on_withdrawn(self, withdrawn: RegistrationWithdrawn) -> None:
        """Rule 5: the worker withdraws; resolved ones are archived, unjustified ones go."""
        now = datetime.now(UTC)
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            if not await claim_message(conn, CONSUMER, withdrawn.event_id):
                return
            stored = await store.registration(conn, withdrawn.registration_id)
            if stored is None:
                return
            # The registration's own subject, never the one the message claims.
            await store.lock(conn, [f"subject:{stored.subject}"])
            stored = await store.registration(conn, withdrawn.registration_id)
            if stored is None:
                return
            reason = withdrawal_end(withdrawn.reason, stored.end_reason)
            if reason is None:
                return
            await self.end(conn, stored, reason, now)
            await self.reconsider(conn, stored.subject, now)
            if not reason.archived and await store.subject_is_gone(conn, stored.subject):
                await self.schedule_shred(
                    conn, stored.subject, "withdrawn as unjustified", [stored.registration_id]
                )
        await self.shred_pending()

    async def schedule_shred(
        self, conn: Conn, subject: str, why: str, registrations: Sequence[uuid.UUID] = ()
    ) -> None:
        """In the deciding transaction: forget the subject, audit, queue the shredding,
        and tell notification, which holds opened copies of the subject's sealed fields.
        The subject's family cluster gets a new key and its old one is shredded too: the
        family matches sealed under it hold this subject's contacts."""
        await self.retire_family_key(conn, subject)
        await store.forget_subject(conn, subject)
        await store.schedule_shred(conn, subject)
        await enqueue(
            conn,
            self.runtime.topics.match_lifecycle,
            SubjectShredded(subject=subject, reason=why, registrations=list(registrations)),
        )
        await self.runtime.audit.record(
            conn,
            action=AuditAction.SHRED,
            object_type="data-key",
            subjects=[subject],
            purpose=f"matching: {why}; its data key is shredded",
        )

    async def retire_family_key(self, conn: Conn, subject: str) -> None:
        """The key of the subject's family cluster goes (shredded with the next pending
        shreds); the family's next match event is sealed under a new one."""
        cluster = await store.family_root(conn, subject)
        if cluster is not None:
            await self.shred_family_key(conn, cluster, "a child of the family was erased")

    async def shred_family_key(self, conn: Conn, cluster: str, why: str) -> None:
        """Unlist a cluster's key, queue its shredding, and log it by its name (random:
        it names no one), so that `keystore reshred` can shred it again after a restore."""
        retired = await store.retire_family_key(conn, cluster)
        if retired is None:
            return
        await store.schedule_shred(conn, retired)
        await self.runtime.audit.record(
            conn,
            action=AuditAction.SHRED,
            object_type="family-key",
            object_id=retired,
            purpose=f"matching: a family cluster's key is shredded: {why}",
        )

    async def shred_pending(self) -> None:
        """Shred the queued data keys; what a crash left queued goes at the next pass."""
        async with self.runtime.pool.acquire() as conn:
            for subject in await store.pending_shreds(conn, 500):
                await self.runtime.keystore.shred(subject)
                await store.shredded(conn, subject)

    async def retention(self) -> None:
        """Retention passes until nothing is due."""
        while await self.retention_pass(datetime.now(UTC)):
            pass

    async def retention_pass(self, now: datetime, limit: int = 500) -> int:
        """End what expired or reached the age limit, clear the archive, shred the gone."""
        await self.shred_pending()
        runtime = self.runtime
        to_shred: set[str] = set()
        async with runtime.pool.acquire() as conn, conn.transaction():
            due = await store.due_to_end(conn, now, limit)
            ended: dict[str, list[uuid.UUID]] = {}
            for stored in due:
                await store.lock(conn, [f"subject:{stored.subject}"])
                reg = Registration(
                    registration_id=stored.registration_id,
                    subject=stored.subject,
                    organisation=stored.organisation,
                    worker=_NOBODY,
                    wijk="WK000000",
                    registered_at=stored.registered_at,
                    expires_at=stored.expires_at,
                    age_limit_from=stored.age_limit_from,
                )
                reason = end_reason_at(reg, now)
                if reason is None:
                    continue
                await self.end(conn, stored, reason, now)
                await self.reconsider(conn, stored.subject, now)
                ended.setdefault(stored.subject, []).append(stored.registration_id)
                if not reason.archived and await store.subject_is_gone(conn, stored.subject):
                    to_shred.add(stored.subject)
            for registration_id, subject in await store.archive_past(conn, now, limit):
                await runtime.audit.record(
                    conn,
                    action=AuditAction.DELETE,
                    object_type="registration",
                    object_id=str(registration_id),
                    subjects=[subject],
                    purpose=f"matching: archive period over (policy {self.policy.version})",
                )
                ended.setdefault(subject, []).append(registration_id)
                if await store.subject_is_gone(conn, subject):
                    to_shred.add(subject)
            for subject in sorted(to_shred):
                await self.schedule_shred(
                    conn, subject, "nothing of the subject is kept", ended.get(subject, [])
                )
        await self.shred_pending()
        return len(due)


# The ended registration's contact is not needed to end it; it is never stored or sent.
_NOBODY = WorkerContact(worker_id="-", display_name="-", email="nobody@invalid.example")


def _regs(d: Decision) -> Sequence[Registration]:
    return d.remaining if isinstance(d, Dissolve) else d.participants


TRENDS = Counter("vroegsignaal_matching_trends_total", "Wijk trends raised")


async def on_count(runtime: ServiceRuntime, policy: Policy, counted: WijkThemeCounted) -> None:
    """Take a wijk x theme week's count from intake (never under k); raise a trend when it
    rises clearly above the wijk's own baseline."""
    async with runtime.pool.acquire() as conn, conn.transaction():
        if not await claim_message(conn, CONSUMER, counted.event_id):
            return
        theme = counted.theme.value
        await store.lock(conn, [f"cell:{counted.wijk}/{theme}/{counted.window}"])
        count = await store.set_count(
            conn, counted.wijk, theme, counted.window, counted.distinct_children
        )
        if count is None:
            return
        baseline = await store.window_counts(
            conn,
            counted.wijk,
            theme,
            trends.previous_windows(counted.window, policy.aggregates.baseline_windows),
        )
        trend = trends.detect(count, baseline, policy)
        if trend is None or not await store.mark_trend(conn, counted.wijk, theme, counted.window):
            return
        await enqueue(
            conn,
            runtime.topics.trends,
            WijkTrendRaised(
                wijk=counted.wijk,
                theme=counted.theme,
                window=counted.window,
                distinct_children=trend.count,
                baseline=trend.baseline,
                p_value=trend.p_value,
                test=trend.test,
                policy_version=policy.version,
            ),
        )
        await runtime.audit.record(
            conn,
            action=AuditAction.CREATE,
            object_type="wijk-trend",
            object_id=f"{counted.wijk}/{theme}/{counted.window}",
            purpose=f"matching: wijk trend, {trend.test} (policy {policy.version})",
        )
    TRENDS.inc()


async def publish_counts(runtime: ServiceRuntime, policy: Policy, batch: int = 500) -> int:
    """Publish the wijk x theme counts that changed, for the team leads' chart. Periodic,
    not per signal, so the counts do not reveal when one child was counted; cells under k
    are never published."""
    async with runtime.pool.acquire() as conn, conn.transaction():
        cells = await store.unpublished_cells(conn, policy.aggregates.k, batch)
        for c in cells:
            await enqueue(
                conn,
                runtime.topics.trends,
                WijkThemeCounted(
                    wijk=c["wijk"],
                    theme=c["theme"],
                    window=c["window_id"],
                    distinct_children=c["children"],
                    policy_version=policy.version,
                ),
            )
            await store.mark_published(conn, c["wijk"], c["theme"], c["window_id"], c["children"])
    return len(cells)


def register(runtime: ServiceRuntime, policy: Policy) -> Matcher:
    matcher = Matcher(runtime, policy)

    async def on_shredded(message: KafkaMessage, shredded: SubjectShredded) -> None:
        if await runtime.keystore.holds(shredded.subject):
            # A notice of a shredding that did not happen: erasing the subject as a
            # whole is the privacy officer's (erasures.approved), not a message's.
            await runtime.dead_letters.send(
                message,
                "not-shredded",
                "the subject's data key is still there: SubjectShredded tells of a "
                "shredding done ('vroegsignaal keystore shred'), it asks for none",
            )
            return
        await matcher.on_erased(shredded)

    # A group of its own: the aggregates scale and lag apart from the matching.
    runtime.consume(
        runtime.topics.wijk_themes,
        handlers={WijkThemeCounted: lambda _, counted: on_count(runtime, policy, counted)},
        default=WijkThemeCounted,
        group="trends",
    )
    runtime.consume(
        runtime.topics.erasures_approved,
        handlers={SubjectErasureApproved: lambda _, approved: matcher.on_erased(approved)},
        default=SubjectErasureApproved,
        group="erasures",
    )
    runtime.consume(
        runtime.topics.accepted,
        handlers={
            SignalAccepted: lambda message, signal: matcher.on_accepted(signal, message),
            SubjectErased: lambda _, erased: matcher.on_partner_erasure(erased),
            SubjectShredded: on_shredded,
            RegistrationWithdrawn: lambda _, withdrawn: matcher.on_withdrawn(withdrawn),
        },
        default=SignalAccepted,
    )
    return matcher

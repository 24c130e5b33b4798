"""Notification's use cases open what is sealed before anything else: an erased subject
is claimed and its person match forgotten; a broken or wrong sealed part is refused,
unclaimed, with a reason that quotes nothing opened."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from services.notification.domain import MESSAGES, Alert, OverdueKind, Part
from services.notification.memory import InMemoryRepository
from services.notification.usecases import Notifications, SealRefused
from shared.contracts import (
    AlertIssued,
    AuditAction,
    Category,
    CoordinationTransferred,
    EarlierInvolvementNoticed,
    MatchContact,
    MatchDissolved,
    MatchJoined,
    MatchKind,
    MatchLeft,
    MatchParticipant,
    MatchRaised,
    OrganisationCategory,
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
from shared.unit_of_work import InMemoryUnitOfWork, Recorded
from tests.factories import pseudonym, worker

POLICY = Policy.parse(open("config/policy.yaml").read())  # noqa: SIM115


class Forgets:
    def __init__(self) -> None:
        self.forgotten: list[uuid.UUID] = []

    async def forget_match_id(self, match_id: uuid.UUID) -> None:
        self.forgotten.append(match_id)


class Keys:
    def __init__(self, opened: bytes | Exception) -> None:
        self.opened = opened

    async def seal(self, subject: str, aad: bytes, plaintext: bytes, *, create: bool) -> str:
        raise AssertionError("nothing is sealed while opening")

    async def open_sealed(self, subject: str, aad: bytes, sealed: str) -> bytes:
        if isinstance(self.opened, Exception):
            raise self.opened
        return self.opened


def raised() -> MatchRaised:
    return MatchRaised(
        match_id=uuid.uuid4(),
        kind=MatchKind.PERSON,
        key=pseudonym(),
        subject=pseudonym(),
        participants=[
            MatchParticipant(registration_id=uuid.uuid4(), organisation=org)
            for org in ("School", "JGZ")
        ],
        sealed="v1.AAAA",
        rule="person-match",
        policy_version="v1",
        raised_at=datetime(2026, 12, 2, tzinfo=UTC),
    )


def open_with(opened: bytes | Exception) -> tuple[object, InMemoryUnitOfWork[Forgets]]:
    uow = InMemoryUnitOfWork(Forgets())
    notifications = Notifications(POLICY, Keys(opened), Topics())
    event = raised()
    result = asyncio.run(notifications.opened(uow, event, SealedMatch))  # type: ignore[arg-type]
    return result, uow


def test_a_wrong_sealed_part_is_refused_without_quoting_it() -> None:
    result, uow = open_with(b'{"wijk": "Jan Jansen"}')
    assert isinstance(result, SealRefused) and result.code == "sealed-invalid"
    assert "Jan" not in result.reason
    assert uow.claimed == set()


def test_a_broken_seal_is_refused_unclaimed() -> None:
    result, uow = open_with(SealBroken("the sealed field does not match its event"))
    assert isinstance(result, SealRefused) and result.code == "seal-broken"
    assert uow.claimed == set()


def test_an_erased_subjects_person_match_is_claimed_and_forgotten() -> None:
    result, uow = open_with(KeyShredded("gone"))
    assert result is None
    assert len(uow.claimed) == 1 and len(uow.repo.forgotten) == 1


# --- the use cases over the in-memory repository and unit of work ---------------------

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday; no Dutch holiday in the weeks after
WIJK_A, WIJK_A2, WIJK_B, WIJK_C = "WK000001", "WK000002", "WK000003", "WK000004"
# The roster: team A serves two wijken, team B one, team C has no one who may coordinate.
ANOUK, CORA, DAVE, LENA = (worker(w) for w in ("anouk", "cora", "dave", "lena"))
BERT, PIM, NOOR, RITA = (worker(w) for w in ("bert", "pim", "noor", "rita"))
# Registering workers of partner organisations (not on the roster).
SAM, JAN, KIM = (worker(w) for w in ("sam", "jan", "kim"))


class Vault:
    """A key store in memory: a sealed part is a token mapped back to what was sealed,
    under whose key and for which event; a shredded key opens nothing any more."""

    def __init__(self) -> None:
        self.kept: dict[str, tuple[str, bytes, bytes]] = {}
        self.shredded: set[str] = set()

    async def seal(self, subject: str, aad: bytes, plaintext: bytes, *, create: bool) -> str:
        if subject in self.shredded:
            raise KeyShredded(subject)
        token = f"v1.{uuid.uuid4().hex}"
        self.kept[token] = (subject, aad, plaintext)
        return token

    async def open_sealed(self, subject: str, aad: bytes, sealed: str) -> bytes:
        if subject in self.shredded:
            raise KeyShredded(subject)
        under, for_event, plaintext = self.kept[sealed]
        if (under, for_event) != (subject, aad):
            raise SealBroken("the sealed field does not match its event")
        return plaintext


def contact(
    who: WorkerContact,
    subject: str,
    organisation: str = "Basisschool De Regenboog",
    category: OrganisationCategory = OrganisationCategory.ONDERWIJS,
) -> MatchContact:
    return MatchContact(
        registration_id=uuid.uuid4(),
        subject=subject,
        worker=who,
        organisation=organisation,
        organisation_category=category,
        age_limit_month="2040-01",
    )


def jgz(who: WorkerContact, subject: str) -> MatchContact:
    return contact(who, subject, "JGZ Voorbeeldrade", OrganisationCategory.JGZ)


class World:
    """Notification's use cases on an in-memory repository, unit of work and key store,
    with a roster; `now` is the repository's clock (when an alert is issued)."""

    def __init__(self, *, email: bool = False) -> None:
        self.now = T0
        self.keys = Vault()
        self.repo = InMemoryRepository(clock=lambda: self.now)
        self.uow = InMemoryUnitOfWork(self.repo)
        self.notifications = Notifications(POLICY, self.keys, Topics(), email=email)
        self.repo.add_team("team-a", "Team A", [WIJK_A, WIJK_A2])
        self.repo.add_team("team-b", "Team B", [WIJK_B])
        self.repo.add_team("team-c", "Team C", [WIJK_C])
        # The lowest id of team A, but a school's: never a coordinator.
        self.repo.add_member(ANOUK, "worker", "team-a", category=OrganisationCategory.ONDERWIJS)
        self.repo.add_member(CORA, "worker", "team-a")
        self.repo.add_member(DAVE, "worker", "team-a")
        self.repo.add_member(LENA, "team_lead", "team-a")
        self.repo.add_member(BERT, "worker", "team-b")
        self.repo.add_member(PIM, "worker", "team-c", category=OrganisationCategory.POLITIE)
        self.repo.add_member(RITA, "regie")

    async def seal(self, under: str, event_id: uuid.UUID, part: BaseModel) -> str:
        return await self.keys.seal(
            under, event_id.bytes, part.model_dump_json().encode(), create=True
        )

    async def match_raised(
        self,
        *contacts: MatchContact,
        wijk: str = WIJK_A,
        family: str | None = None,
        match_id: uuid.UUID | None = None,
    ) -> MatchRaised:
        """A person match, sealed under its subject's key; a family match (`family`, the
        cluster) under a key of its own."""
        event_id = uuid.uuid4()
        kind = MatchKind.FAMILY if family else MatchKind.PERSON
        under = pseudonym() if family else contacts[0].subject
        sealed = SealedMatch(wijk=wijk, contacts=list(contacts), family=family)
        return MatchRaised(
            event_id=event_id,
            match_id=match_id or uuid.uuid4(),
            kind=kind,
            key=under,
            subject=under,
            participants=[
                MatchParticipant(registration_id=c.registration_id, organisation=c.organisation)
                for c in contacts
            ],
            sealed=await self.seal(under, event_id, sealed),
            rule=f"{kind.value}-match",
            policy_version=POLICY.version,
            raised_at=T0,
        )

    async def match_joined(
        self,
        match: MatchRaised,
        contacts: list[MatchContact],
        newcomers: list[MatchContact],
        wijk: str = WIJK_A,
    ) -> MatchJoined:
        event_id = uuid.uuid4()
        sealed = SealedMatch(wijk=wijk, contacts=contacts)
        return MatchJoined(
            event_id=event_id,
            match_id=match.match_id,
            kind=match.kind,
            key=match.key,
            subject=match.subject,
            newcomers=[c.registration_id for c in newcomers],
            participants=[
                MatchParticipant(registration_id=c.registration_id, organisation=c.organisation)
                for c in contacts
            ],
            sealed=await self.seal(match.subject, event_id, sealed),
            rule=f"{match.kind.value}-match",
            policy_version=POLICY.version,
            joined_at=T0,
        )

    async def moved(
        self, match: MatchRaised, from_wijk: str, to_wijk: str
    ) -> CoordinationTransferred:
        event_id = uuid.uuid4()
        sealed = SealedTransfer(from_wijk=from_wijk, to_wijk=to_wijk)
        return CoordinationTransferred(
            event_id=event_id,
            match_id=match.match_id,
            kind=match.kind,
            key=match.key,
            subject=match.subject,
            sealed=await self.seal(match.subject, event_id, sealed),
            rule="wijk-moved",
            policy_version=POLICY.version,
            transferred_at=T0,
        )

    def raise_now(self, match: MatchRaised) -> Awaitable[SealRefused | None]:
        return self.notifications.raised(self.uow, match, T0)

    def told(self, match_id: uuid.UUID | None, occasion: str) -> dict[str, Alert]:
        """The alerts of a match on an occasion, by recipient (every recipient once)."""
        found = [
            a.alert
            for a in self.repo.alerts.values()
            if a.alert.match_id == match_id and a.alert.occasion.split(":")[0] == occasion
        ]
        by_recipient = {a.recipient.worker_id: a for a in found}
        assert len(by_recipient) == len(found), "a recipient was told twice"
        return by_recipient

    def issued(self) -> list[str]:
        """Whom the published AlertIssued events name, in order."""
        return [e.recipient_id for _, e in self.uow.published if isinstance(e, AlertIssued)]

    def audited(self, object_type: str) -> list[Recorded]:
        return [r for r in self.uow.recorded if r.object_type == object_type]


def dissolved(match: MatchRaised, at: datetime = T0) -> MatchDissolved:
    return MatchDissolved(
        match_id=match.match_id,
        kind=match.kind,
        key=match.key,
        reason="registrations withdrawn",
        remaining=[],
        rule="below-min-organisations",
        policy_version=POLICY.version,
        dissolved_at=at,
    )


def contacts_of(alert: Alert) -> set[str]:
    return {c.worker_id for c in alert.contacts}


async def test_a_raised_match_tells_each_worker_and_its_coordinator_that_never_what() -> None:
    world = World()
    youth = pseudonym()
    school, health = contact(SAM, youth), jgz(JAN, youth)
    match = await world.match_raised(school, health)

    assert await world.raise_now(match) is None

    told = world.told(match.match_id, "raised")
    assert set(told) == {"sam", "jan", "cora"}
    assert (told["sam"].part, contacts_of(told["sam"])) == (Part.REGISTRANT, {"jan"})
    assert (told["jan"].part, contacts_of(told["jan"])) == (Part.REGISTRANT, {"sam"})
    assert (told["cora"].part, contacts_of(told["cora"])) == (Part.COORDINATOR, {"sam", "jan"})
    assert {a.coordinator for a in told.values()} == {CORA}
    # That, never what: the fixed texts, no theme and no kind of organisation.
    said = MESSAGES[(MatchKind.PERSON, "raised")]
    assert {told["sam"].message, told["jan"].message} == {said}
    assert told["cora"].message == f"{MESSAGES['coordinator']} {said}"
    words = {c.value for c in Category} | {c.value for c in OrganisationCategory}
    assert not any(w in a.message.lower() for a in told.values() for w in words)
    assert sorted(world.issued()) == ["cora", "jan", "sam"]
    assert [r.on_behalf_of for r in world.audited("match")] == ["cora"]
    assert {t.registration_id for t in world.repo.tasks.values()} == {
        school.registration_id,
        health.registration_id,
    }

    # Redelivered: claimed once, nothing changes.
    published, recorded = list(world.uow.published), list(world.uow.recorded)
    alerts, tasks = dict(world.repo.alerts), dict(world.repo.tasks)
    assert await world.raise_now(match) is None
    assert world.uow.claimed == {match.event_id}
    assert (world.uow.published, world.uow.recorded) == (published, recorded)
    assert (world.repo.alerts, world.repo.tasks) == (alerts, tasks)


async def test_the_coordinator_is_the_eligible_team_worker_with_fewest_open_matches() -> None:
    world = World()
    first = await world.match_raised(contact(SAM, (y := pseudonym())), jgz(JAN, y))
    second = await world.match_raised(contact(SAM, (z := pseudonym())), jgz(JAN, z))
    await world.raise_now(first)
    await world.raise_now(second)
    coordinators = [(await world.repo.match(m.match_id)) for m in (first, second)]
    # Anouk's id is lowest but she works at a school; Cora has one open match by then.
    assert [m.coordinator_id if m else None for m in coordinators] == ["cora", "dave"]


async def test_a_new_match_of_a_family_keeps_the_familys_coordinator() -> None:
    world = World()
    family = "a" * 64
    older, younger = pseudonym(), pseudonym()
    first = await world.match_raised(contact(SAM, older), jgz(JAN, younger), family=family)
    second = await world.match_raised(contact(KIM, younger), jgz(JAN, older), family=family)
    await world.raise_now(first)
    await world.raise_now(second)
    kept = await world.repo.match(second.match_id)
    # Dave has fewer open matches, but the family has a coordinator already.
    assert kept is not None and kept.coordinator_id == "cora"
    assert world.told(second.match_id, "raised")["cora"].message == (
        f"{MESSAGES['coordinator']} {MESSAGES[(MatchKind.FAMILY, 'raised')]}"
    )


async def test_a_match_no_one_may_coordinate_tells_the_regie_role_until_one_may() -> None:
    world = World()
    match = await world.match_raised(contact(SAM, (y := pseudonym())), jgz(JAN, y), wijk=WIJK_C)
    await world.raise_now(match)

    told = world.told(match.match_id, "raised")
    assert set(told) == {"sam", "jan", "rita"}
    assert (told["rita"].part, told["rita"].message) == (Part.REGIE, MESSAGES["unassigned"])
    assert await world.notifications.reassign_orphans(world.uow) == 0  # a police officer only

    world.repo.add_member(NOOR, "worker", "team-c")
    assert await world.notifications.reassign_orphans(world.uow) == 1
    kept = await world.repo.match(match.match_id)
    assert kept is not None and kept.coordinator_id == "noor"
    assert set(world.told(match.match_id, "reassigned")) == {"sam", "jan", "noor", "rita"}
    assert await world.notifications.reassign_orphans(world.uow) == 0


async def test_a_match_whose_coordinator_left_the_roster_gets_another_of_the_team() -> None:
    world = World()
    match = await world.match_raised(contact(SAM, (y := pseudonym())), jgz(JAN, y))
    await world.raise_now(match)
    world.repo.set_active("cora", False)

    assert await world.notifications.reassign_orphans(world.uow) == 1

    kept = await world.repo.match(match.match_id)
    assert kept is not None and kept.coordinator_id == "dave"
    told = world.told(match.match_id, "reassigned")
    assert set(told) == {"sam", "jan", "dave", "rita"}
    assert {a.message for a in told.values()} == {MESSAGES["reassigned"]}
    assert [r.on_behalf_of for r in world.audited("match")] == ["cora", "dave"]
    assert await world.notifications.reassign_orphans(world.uow) == 0


async def test_a_newcomer_learns_whom_to_contact_and_everyone_involved_of_the_newcomer() -> None:
    world = World()
    youth = pseudonym()
    school, health, doctor = (
        contact(SAM, youth),
        jgz(JAN, youth),
        contact(KIM, youth, "Huisartsenpraktijk Centrum", OrganisationCategory.HUISARTS),
    )
    match = await world.match_raised(school, health)
    await world.raise_now(match)
    joined = await world.match_joined(match, [school, health, doctor], [doctor])

    assert await world.notifications.joined(world.uow, joined, T0) is None

    told = world.told(match.match_id, "joined")
    assert {w: contacts_of(a) for w, a in told.items()} == {
        "kim": {"sam", "jan"},
        "sam": {"kim"},
        "jan": {"kim"},
        "cora": {"kim"},
    }
    assert told["cora"].part is Part.COORDINATOR
    assert {a.message for a in told.values()} == {MESSAGES[(MatchKind.PERSON, "joined")]}
    assert {w.worker_id for w, _ in await world.repo.parties(match.match_id)} == {
        "sam",
        "jan",
        "kim",
    }
    # Only the newcomer gets a new task to inform the family.
    assert sorted(t.worker_id for t in world.repo.tasks.values()) == ["jan", "kim", "sam"]


async def test_a_join_that_overtook_its_raise_opens_the_match_and_the_raise_adds_nothing() -> None:
    world = World()
    youth = pseudonym()
    school, health, doctor = contact(SAM, youth), jgz(JAN, youth), jgz(KIM, youth)
    match = await world.match_raised(school, health)
    joined = await world.match_joined(match, [school, health, doctor], [doctor])

    await world.notifications.joined(world.uow, joined, T0)
    assert set(world.told(match.match_id, "raised")) == {"sam", "jan", "kim", "cora"}
    published = list(world.uow.published)

    await world.raise_now(match)
    assert world.uow.published == published
    assert set(world.told(match.match_id, "raised")) == {"sam", "jan", "kim", "cora"}
    assert world.told(match.match_id, "joined") == {}


async def test_a_transfer_that_overtook_its_match_waits_for_it() -> None:
    world = World()
    match = await world.match_raised(contact(SAM, (y := pseudonym())), jgz(JAN, y))
    moved = await world.moved(match, WIJK_A, WIJK_B)

    assert await world.notifications.transferred(world.uow, moved) is None
    assert await world.repo.match(match.match_id) is None
    assert world.repo.alerts == {}

    await world.raise_now(match)
    kept = await world.repo.match(match.match_id)
    assert kept is not None
    assert (kept.wijk, kept.team_id, kept.coordinator_id) == (WIJK_B, "team-b", "bert")
    assert set(world.told(match.match_id, "transferred")) == {"sam", "jan", "cora", "bert", "rita"}
    assert world.repo.pending == {}
    # Its redelivery is claimed already: nothing is told again.
    published = list(world.uow.published)
    await world.notifications.transferred(world.uow, moved)
    assert world.uow.published == published


async def test_a_move_to_another_teams_wijk_hands_coordination_over_and_tells_everyone() -> None:
    world = World()
    match = await world.match_raised(contact(SAM, (y := pseudonym())), jgz(JAN, y))
    await world.raise_now(match)
    moved = await world.moved(match, WIJK_A, WIJK_B)

    await world.notifications.transferred(world.uow, moved)

    kept = await world.repo.match(match.match_id)
    assert kept is not None
    assert (kept.wijk, kept.team_id, kept.coordinator_id) == (WIJK_B, "team-b", "bert")
    told = world.told(match.match_id, "transferred")
    assert {w: a.part for w, a in told.items()} == {
        "sam": Part.REGISTRANT,
        "jan": Part.REGISTRANT,
        "cora": Part.COORDINATOR,
        "bert": Part.COORDINATOR,
        "rita": Part.REGIE,
    }
    assert {a.coordinator for a in told.values()} == {BERT}
    assert world.audited("match")[-1].on_behalf_of == "bert"


async def test_a_move_within_the_team_keeps_the_coordinator() -> None:
    world = World()
    match = await world.match_raised(contact(SAM, (y := pseudonym())), jgz(JAN, y))
    await world.raise_now(match)
    moved = await world.moved(match, WIJK_A, WIJK_A2)

    await world.notifications.transferred(world.uow, moved)

    kept = await world.repo.match(match.match_id)
    assert kept is not None
    assert (kept.wijk, kept.team_id, kept.coordinator_id) == (WIJK_A2, "team-a", "cora")
    assert set(world.told(match.match_id, "transferred")) == {"sam", "jan", "cora", "rita"}


async def test_workers_whose_registration_ended_leave_the_match_audited_once() -> None:
    world = World()
    youth = pseudonym()
    school, health, doctor = contact(SAM, youth), jgz(JAN, youth), jgz(KIM, youth)
    match = await world.match_raised(school, health, doctor)
    await world.raise_now(match)
    alerts = dict(world.repo.alerts)
    left = MatchLeft(
        match_id=match.match_id,
        kind=match.kind,
        key=match.key,
        left=[school.registration_id],
        remaining=[health.registration_id, doctor.registration_id],
        rule="registration-ended",
        policy_version=POLICY.version,
        left_at=T0,
    )

    await world.notifications.left(world.uow, left)
    await world.notifications.left(world.uow, left)

    assert {w.worker_id for w, _ in await world.repo.parties(match.match_id)} == {"jan", "kim"}
    assert {t.worker_id for t in world.repo.tasks.values()} == {"jan", "kim"}
    (update,) = [r for r in world.audited("match") if r.action is AuditAction.UPDATE]
    assert update.subjects == [youth] and "1 ended registrations" in update.purpose
    assert world.repo.alerts == alerts  # no one is told


async def test_a_dissolved_match_is_closed_and_everyone_involved_told_once() -> None:
    world = World()
    match = await world.match_raised(contact(SAM, (y := pseudonym())), jgz(JAN, y))
    await world.raise_now(match)

    await world.notifications.dissolved(world.uow, dissolved(match))

    assert world.repo.matches[match.match_id].state == "closed"
    told = world.told(match.match_id, "dissolved")
    assert set(told) == {"sam", "jan", "cora"}
    assert {a.message for a in told.values()} == {MESSAGES["dissolved"]}
    # A second dissolution (another event) finds it closed: no one is told again.
    published, recorded = list(world.uow.published), list(world.uow.recorded)
    await world.notifications.dissolved(world.uow, dissolved(match))
    assert (world.uow.published, world.uow.recorded) == (published, recorded)


async def test_a_dissolution_that_overtook_its_match_ends_it_when_it_arrives() -> None:
    world = World()
    match = await world.match_raised(contact(SAM, (y := pseudonym())), jgz(JAN, y))

    await world.notifications.dissolved(world.uow, dissolved(match))
    assert len(world.repo.pending) == 1
    await world.raise_now(match)

    assert world.repo.matches[match.match_id].state == "closed"
    assert set(world.told(match.match_id, "dissolved")) == {"sam", "jan", "cora"}


async def test_an_erased_subjects_person_match_is_forgotten_for_good() -> None:
    world = World()
    youth = pseudonym()
    school, health = contact(SAM, youth), jgz(JAN, youth)
    match = await world.match_raised(school, health)
    await world.raise_now(match)
    doctor = jgz(KIM, youth)
    late_join = await world.match_joined(match, [school, health, doctor], [doctor])
    world.keys.shredded.add(youth)
    erased = SubjectShredded(
        subject=youth,
        reason="erasure approved",
        registrations=[school.registration_id, health.registration_id],
    )

    await world.notifications.erased(world.uow, erased)

    assert await world.repo.match(match.match_id) is None
    assert await world.repo.forgotten(match.match_id)
    assert (world.repo.alerts, world.repo.tasks, world.repo.parties_) == ({}, {}, {})
    (deleted,) = world.audited("subject-notifications")
    assert (deleted.action, deleted.subjects) == (AuditAction.DELETE, [youth])
    # What was still on its way neither reopens it nor waits for it.
    assert await world.notifications.joined(world.uow, late_join, T0) is None
    await world.notifications.dissolved(world.uow, dissolved(match))
    assert await world.repo.match(match.match_id) is None
    assert world.repo.pending == {}
    assert {late_join.event_id, erased.event_id} <= world.uow.claimed


async def test_an_erased_childs_family_match_goes_on_for_the_siblings() -> None:
    world = World()
    erased_child, sibling = pseudonym(), pseudonym()
    school, health, doctor = contact(SAM, erased_child), jgz(JAN, sibling), jgz(KIM, sibling)
    match = await world.match_raised(school, health, doctor, family="b" * 64)
    await world.raise_now(match)
    # Sealed under the family's old key, which is replaced when a child is erased.
    in_flight = await world.match_joined(match, [school, health, doctor], [doctor])
    world.keys.shredded |= {erased_child, match.subject}

    await world.notifications.erased(
        world.uow,
        SubjectShredded(
            subject=erased_child, reason="erasure approved", registrations=[school.registration_id]
        ),
    )
    assert await world.notifications.joined(world.uow, in_flight, T0) is None

    assert await world.repo.match(match.match_id) is not None
    assert not await world.repo.forgotten(match.match_id)
    assert (await world.repo.about(match.match_id)).subjects == (sibling,)
    assert "sam" not in world.told(match.match_id, "raised")
    await world.notifications.dissolved(world.uow, dissolved(match))
    assert set(world.told(match.match_id, "dissolved")) == {"jan", "kim", "cora"}


async def test_an_alert_unacknowledged_for_five_working_days_goes_on_the_leads_overview() -> None:
    world = World(email=True)
    match = await world.match_raised(contact(SAM, (y := pseudonym())), jgz(JAN, y))
    await world.raise_now(match)
    told = world.told(match.match_id, "raised")
    world.repo.acknowledge(told["sam"].alert_id, T0)

    # Six days on, but four working days: not yet.
    assert await world.notifications.escalate(world.uow, datetime(2026, 3, 8, 9, tzinfo=UTC)) == 0
    assert await world.notifications.escalate(world.uow, datetime(2026, 3, 9, 9, tzinfo=UTC)) == 2

    late = {told["jan"].alert_id, told["cora"].alert_id}
    assert {(i.alert_id, i.recipient_id) for i in world.repo.overdue_items.values()} == {
        (a, "lena") for a in late
    }
    assert {r.on_behalf_of for r in world.audited("overdue")} == {"lena"}
    assert {i for i, a in world.repo.alerts.items() if a.escalated_at} == late
    assert await world.notifications.escalate(world.uow, datetime(2026, 3, 10, 9, tzinfo=UTC)) == 0
    assert len(world.audited("overdue")) == 2


async def test_a_late_alert_of_a_team_without_an_active_lead_goes_on_the_regies_overview() -> None:
    world = World(email=True)
    match = await world.match_raised(contact(SAM, (y := pseudonym())), jgz(JAN, y))
    await world.raise_now(match)
    world.repo.set_active("lena", False)

    assert await world.notifications.escalate(world.uow, datetime(2026, 3, 9, 9, tzinfo=UTC)) == 3

    assert {i.recipient_id for i in world.repo.overdue_items.values()} == {"rita"}
    assert {r.on_behalf_of for r in world.audited("overdue")} == {"rita"}


async def test_a_match_without_contact_for_ten_working_days_goes_on_the_regies_overview() -> None:
    world = World(email=True)
    quiet = await world.match_raised(contact(SAM, (y := pseudonym())), jgz(JAN, y))
    talking = await world.match_raised(contact(SAM, (z := pseudonym())), jgz(JAN, z))
    await world.raise_now(quiet)
    await world.raise_now(talking)
    for alert_id in list(world.repo.alerts):
        world.repo.acknowledge(alert_id, T0)
    world.repo.record_contact(talking.match_id, "sam", "jan", datetime(2026, 3, 3, tzinfo=UTC))

    assert await world.notifications.escalate(world.uow, datetime(2026, 3, 13, 9, tzinfo=UTC)) == 0
    assert await world.notifications.escalate(world.uow, datetime(2026, 3, 16, 9, tzinfo=UTC)) == 1

    (item,) = world.repo.overdue_items.values()
    assert (item.kind, item.match_id, item.recipient_id) == (
        OverdueKind.NO_CONTACT,
        quiet.match_id,
        "rita",
    )
    (entry,) = world.audited("overdue")
    assert (entry.on_behalf_of, entry.subjects) == ("rita", [y])
    assert await world.notifications.escalate(world.uow, datetime(2026, 3, 17, 9, tzinfo=UTC)) == 0


async def test_retention_forgets_a_closed_match_a_year_after_it_ended_and_only_then() -> None:
    world = World()
    ended = await world.match_raised(contact(SAM, (y := pseudonym())), jgz(JAN, y))
    open_ = await world.match_raised(contact(SAM, (z := pseudonym())), jgz(JAN, z))
    await world.raise_now(ended)
    await world.raise_now(open_)
    await world.notifications.dissolved(world.uow, dissolved(ended, T0))
    kept = len(world.told(open_.match_id, "raised"))

    assert await world.notifications.retention(world.uow, T0 + timedelta(days=365)) == 0
    assert world.audited("inbox-history") == []
    assert ended.match_id in world.repo.matches

    # Three alerts when it was raised, three when it ended.
    assert await world.notifications.retention(world.uow, T0 + timedelta(days=366)) == 6
    assert await world.repo.forgotten(ended.match_id)
    assert list(world.repo.matches) == [open_.match_id]
    assert len(world.repo.alerts) == kept
    (deleted,) = world.audited("inbox-history")
    assert deleted.action is AuditAction.DELETE


async def test_a_notice_of_earlier_involvement_names_the_organisations_once() -> None:
    world = World()
    youth = pseudonym()
    event_id = uuid.uuid4()
    notice = SealedNotice(
        worker=SAM,
        organisation="Basisschool De Regenboog",
        earlier_organisations=["JGZ Voorbeeldrade", "Veilig Thuis"],
    )
    noticed = EarlierInvolvementNoticed(
        event_id=event_id,
        registration_id=uuid.uuid4(),
        subject=youth,
        sealed=await world.seal(youth, event_id, notice),
    )

    assert await world.notifications.earlier(world.uow, noticed) is None
    assert await world.notifications.earlier(world.uow, noticed) is None

    (alert,) = world.told(None, "earlier").values()
    assert alert.recipient == SAM
    assert alert.message == f"{MESSAGES['earlier']} JGZ Voorbeeldrade, Veilig Thuis"
    assert world.issued() == ["sam"]
    (entry,) = world.audited("alert")
    assert entry.subjects == [youth]


async def test_a_wijk_count_is_kept_and_marked_by_its_trend() -> None:
    world = World()
    counted = WijkThemeCounted(
        wijk=WIJK_A,
        theme=Category.SCHOOLVERZUIM,
        window="2026-W10",
        distinct_children=12,
        policy_version=POLICY.version,
    )
    await world.notifications.cell(world.uow, counted)
    assert (world.repo.trends[(WIJK_A, "schoolverzuim", "2026-W10")].children) == 12
    assert not world.repo.trends[(WIJK_A, "schoolverzuim", "2026-W10")].trend

    trend = WijkTrendRaised(
        wijk=WIJK_A,
        theme=Category.SCHOOLVERZUIM,
        window="2026-W10",
        distinct_children=14,
        baseline=4.0,
        p_value=0.001,
        test="poisson",
        policy_version=POLICY.version,
    )
    await world.notifications.cell(world.uow, trend)
    cell = world.repo.trends[(WIJK_A, "schoolverzuim", "2026-W10")]
    assert (cell.children, cell.trend) == (14, True)
    assert world.uow.claimed == {counted.event_id, trend.event_id}

"""Matching's use cases, called directly on the in-memory unit of work: what is refused
and how, what a redelivery changes, what notification is sent about the youth's age,
and the shredding queue."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.matching.replay import repeatable_repository
from services.matching.usecases import Matching, Refusal, Registered
from shared.contracts import (
    AuditAction,
    AuditOutcome,
    MatchRaised,
    OrganisationCategory,
    SealedMatch,
    SealedSignal,
    SignalAccepted,
    Topics,
)
from shared.keystore import SealBroken
from shared.policy import Policy
from shared.unit_of_work import InMemoryUnitOfWork
from tests.factories import accepted, pseudonym, worker

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICY = """
version: uc-1
municipality: Voorbeeldrade
authorised_categories: [jgz, onderwijs]
coordinating_categories: [jgz]
retention: {{active_days: 3650, age_limit_years: {age}}}
"""


class Keys:
    """A key store in memory that keeps what is sealed, so a test can read it."""

    def __init__(self) -> None:
        self.plain: dict[str, bytes] = {}
        self.shredded: list[str] = []
        self.broken: set[bytes] = set()

    async def seal(self, subject: str, aad: bytes, plaintext: bytes, *, create: bool) -> str:
        name = f"v1.{uuid.uuid4().hex}"
        self.plain[name] = plaintext
        return name

    async def open_sealed(self, subject: str, aad: bytes, sealed: str) -> bytes:
        if aad in self.broken:
            raise SealBroken("the sealed field does not match its event")
        return self.plain[sealed]

    async def shred(self, subject: str) -> bool:
        self.shredded.append(subject)
        return True


class World:
    def __init__(self, age: int = 23) -> None:
        self.keys = Keys()
        self.matching = Matching(Policy.parse(POLICY.format(age=age)), self.keys, Topics())
        self.uow = InMemoryUnitOfWork(repeatable_repository())

    def signal(
        self,
        subject: str,
        org: str,
        *,
        category: OrganisationCategory = OrganisationCategory.ONDERWIJS,
        turns_23: str = "2040-01",
        parents: list[str] | None = None,
    ) -> SignalAccepted:
        event_id = uuid.uuid4()
        sealed = asyncio.run(
            self.keys.seal(
                subject,
                event_id.bytes,
                SealedSignal(worker=worker(f"{org}-1"), wijk="WK000001", parents=parents or [])
                .model_dump_json()
                .encode(),
                create=True,
            )
        )
        return accepted(event_id, subject, org, category, NOW, turns_23=turns_23, sealed=sealed)

    def register(self, signal: SignalAccepted) -> Registered | Refusal:
        return asyncio.run(self.matching.register(self.uow, signal, NOW))

    def published(self, kind: type[Any]) -> list[Any]:
        return [e for _, e in self.uow.published if isinstance(e, kind)]


def test_an_unauthorised_category_is_refused_audited_and_claimed() -> None:
    world = World()
    signal = world.signal(pseudonym(), "police", category=OrganisationCategory.POLITIE)
    refused = world.register(signal)
    assert isinstance(refused, Refusal) and refused.code is Registered.NOT_AUTHORISED
    assert "politie" in refused.reason
    assert [(r.action, r.outcome) for r in world.uow.recorded] == [
        (AuditAction.REJECT, AuditOutcome.DENIED)
    ]
    assert signal.event_id in world.uow.claimed
    assert asyncio.run(world.uow.repo.registration(signal.signal_id)) is None
    # Its redelivery is refused again (dead-lettered again), and audited once.
    assert isinstance(world.register(signal), Refusal)
    assert len(world.uow.recorded) == 1


def test_a_youth_over_the_policys_age_limit_is_refused_and_links_no_family() -> None:
    world = World(age=18)
    parent = pseudonym()
    older = pseudonym()
    # Turned 18 in 2025-06 (23 in 2030-06): over the age limit of 18.
    refused = world.register(world.signal(older, "school", turns_23="2030-06", parents=[parent]))
    assert isinstance(refused, Refusal) and refused.code is Registered.OVER_AGE
    assert asyncio.run(world.uow.repo.family_root(older)) is None
    assert asyncio.run(world.uow.repo.subject_is_gone(older))
    # Under the default age limit, the same youth is registered.
    default = World()
    assert default.register(default.signal(older, "school", turns_23="2030-06")) is (
        Registered.STORED
    )


def test_notification_is_sent_the_month_the_youth_turns_23_whatever_the_age_limit() -> None:
    world = World(age=18)
    child = pseudonym()
    world.register(world.signal(child, "school", turns_23="2038-03"))
    world.register(
        world.signal(child, "jgz", category=OrganisationCategory.JGZ, turns_23="2038-03")
    )
    (raised,) = world.published(MatchRaised)
    contacts = SealedMatch.model_validate_json(world.keys.plain[raised.sealed]).contacts
    assert {c.age_limit_month for c in contacts} == {"2038-03"}
    # The registrations themselves end at the 18th birthday's month.
    kept = asyncio.run(world.uow.repo.live_registrations([child]))
    assert {r.expires_at for r in kept} == {datetime(2033, 3, 1, tzinfo=UTC)}


def test_a_broken_seal_is_refused_unclaimed_and_a_redelivery_changes_nothing() -> None:
    world = World()
    child = pseudonym()
    broken = world.signal(child, "school")
    world.keys.broken.add(broken.signal_id.bytes)
    refused = world.register(broken)
    assert isinstance(refused, Refusal) and refused.code is Registered.SEAL_BROKEN
    assert broken.event_id not in world.uow.claimed and world.uow.recorded == []
    fine = world.signal(child, "school")
    assert world.register(fine) is Registered.STORED
    recorded, published = len(world.uow.recorded), len(world.uow.published)
    assert world.register(fine) is Registered.ALREADY
    assert (len(world.uow.recorded), len(world.uow.published)) == (recorded, published)


def test_a_seal_broken_elsewhere_fails_the_unit_of_work_not_the_new_signal() -> None:
    """A family member's stored registration that no longer opens is not the incoming
    signal's fault: the use case fails (the message is retried), it is not refused."""
    world = World()
    child, sibling, parent = pseudonym(), pseudonym(), pseudonym()
    first = world.signal(sibling, "jgz", category=OrganisationCategory.JGZ, parents=[parent])
    assert world.register(first) is Registered.STORED
    world.keys.broken.add(first.signal_id.bytes)
    try:
        world.register(world.signal(child, "school", parents=[parent]))
    except SealBroken:
        pass
    else:
        raise AssertionError("the broken family member's seal went unnoticed")


def test_what_goes_is_shredded_once_and_leaves_the_queue() -> None:
    world = World()
    child = pseudonym()
    world.register(world.signal(child, "school"))
    due = NOW + timedelta(days=3650)
    # An expired registration is archived: nothing shredded yet.
    assert asyncio.run(world.matching.end_due(world.uow, due)) == 1
    assert asyncio.run(world.matching.shred_pending(world.uow)) == 0
    # When the archive period is over, the subject's key goes, once.
    archive_over = asyncio.run(world.uow.repo.next_due())
    assert archive_over is not None and archive_over > due
    asyncio.run(world.matching.end_due(world.uow, archive_over))
    assert asyncio.run(world.matching.shred_pending(world.uow)) == 1
    assert asyncio.run(world.matching.shred_pending(world.uow)) == 0
    assert world.keys.shredded == [child]

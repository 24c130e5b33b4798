"""Notification's use cases open what is sealed before anything else: an erased subject
is claimed and its person match forgotten; a broken or wrong sealed part is refused,
unclaimed, with a reason that quotes nothing opened."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from services.notification.usecases import Notifications, SealRefused
from shared.contracts import MatchKind, MatchParticipant, MatchRaised, SealedMatch, Topics
from shared.keystore import KeyShredded, SealBroken
from shared.policy import Policy
from shared.unit_of_work import InMemoryUnitOfWork
from tests.factories import pseudonym

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

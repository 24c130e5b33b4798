"""Intake's use cases, called directly on the in-memory unit of work: admitting,
refusing, withdrawing, releasing the counts and destroying closed weeks' keys."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from services.intake.domain import PartnerRegistry, Rejection, Rekeyer, window_key_name
from services.intake.memory import InMemoryRepository
from services.intake.usecases import Admitted, Intake
from shared.contracts import (
    AuditAction,
    AuditOutcome,
    RegistrationWithdrawn,
    SignalAccepted,
    SignalWithdrawn,
    Topics,
    WijkThemeCounted,
    WithdrawalReason,
)
from shared.keystore import KeyShredded
from shared.unit_of_work import InMemoryUnitOfWork
from tests.factories import pseudonym, signal

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REGISTRY = PartnerRegistry.parse(
    """
partners:
  - {id: school-de-regenboog, organisation: Basisschool De Regenboog, category: onderwijs}
  - {id: jgz-voorbeeldrade, organisation: JGZ Voorbeeldrade, category: jgz}
"""
)
SCHOOL = REGISTRY.get("school-de-regenboog")
assert SCHOOL is not None


class Keys:
    def __init__(self, repo: InMemoryRepository) -> None:
        self.repo = repo
        self.sealed: dict[str, tuple[str, bytes]] = {}
        self.shredded: list[str] = []
        self.steps: list[tuple[str, bool]] = []  # (key shredded, its week still listed)

    async def seal(self, subject: str, aad: bytes, plaintext: bytes, *, create: bool) -> str:
        name = f"v1.{uuid.uuid4().hex}"
        self.sealed[name] = (subject, plaintext)
        return name

    async def open_sealed(self, subject: str, aad: bytes, sealed: str) -> bytes:
        if subject in self.shredded:
            raise KeyShredded(subject)
        return self.sealed[sealed][1]

    async def token_key(self, name: str) -> bytes:
        return name.encode().ljust(32, b"k")

    async def shred(self, subject: str) -> bool:
        self.shredded.append(subject)
        listed = any(window_key_name(w) == subject for w in self.repo.windows)
        self.steps.append((subject, listed))
        return True


class World:
    def __init__(self) -> None:
        self.uow = InMemoryUnitOfWork(InMemoryRepository())
        self.keys = Keys(self.uow.repo)
        self.intake = Intake(
            REGISTRY,
            Rekeyer({"g1": b"k" * 32}, "g1"),
            self.keys,
            Topics(),
            max_age=timedelta(days=14),
        )

    def run(self, step: Any) -> Any:
        return asyncio.run(step)

    def published(self, kind: type[Any]) -> list[Any]:
        return [e for _, e in self.uow.published if isinstance(e, kind)]

    @asynccontextmanager
    async def units(self) -> AsyncIterator[InMemoryUnitOfWork[InMemoryRepository]]:
        yield self.uow


def test_an_admitted_signal_is_sent_on_once_and_its_theme_held_sealed() -> None:
    world = World()
    sent = signal("school-de-regenboog", pseudonym(), registered_at=NOW)
    assert world.run(world.intake.admit(world.uow, SCHOOL, sent, NOW)) is Admitted.ACCEPTED
    (accepted,) = world.published(SignalAccepted)
    assert accepted.subject != sent.subject  # re-keyed into the matching domain
    assert "schoolverzuim" not in accepted.model_dump_json()  # the theme stays in intake
    (held,) = world.uow.repo.held.values()
    assert held[1] == "2026-W48" and held[2] in world.keys.sealed  # sealed under its week
    assert world.keys.sealed[held[2]][0] == window_key_name("2026-W48")
    (entry,) = world.uow.recorded
    assert entry.actor is not None and entry.actor.actor_id == "school-de-regenboog"
    # Redelivered: nothing more is sent, held or logged.
    assert world.run(world.intake.admit(world.uow, SCHOOL, sent, NOW)) is Admitted.DUPLICATE
    assert (len(world.uow.published), len(world.uow.repo.held), len(world.uow.recorded)) == (
        1,
        1,
        1,
    )


def test_a_refused_signal_is_recorded_and_audited_not_claimed() -> None:
    world = World()
    stale = signal("school-de-regenboog", pseudonym(), registered_at=NOW - timedelta(days=30))
    stale = stale.model_copy(update={"sent_at": NOW - timedelta(days=30)})
    refused = world.run(world.intake.admit(world.uow, SCHOOL, stale, NOW))
    assert isinstance(refused, Rejection) and refused.code == "stale"
    assert world.run(world.uow.repo.counts()) == {"accepted": 0, "rejected": 1}
    assert [(r.action, r.outcome) for r in world.uow.recorded] == [
        (AuditAction.REJECT, AuditOutcome.DENIED)
    ]
    # Not claimed: the corrected resend with the same event id gets in.
    resent = stale.model_copy(update={"registered_at": NOW, "sent_at": NOW})
    assert world.run(world.intake.admit(world.uow, SCHOOL, resent, NOW)) is Admitted.ACCEPTED


def test_only_a_registration_the_partner_made_can_be_withdrawn() -> None:
    world = World()
    child = pseudonym()
    sent = signal("school-de-regenboog", child, registered_at=NOW)
    world.run(world.intake.admit(world.uow, SCHOOL, sent, NOW))
    (accepted,) = world.published(SignalAccepted)

    def withdrawal(withdraws: uuid.UUID) -> SignalWithdrawn:
        return SignalWithdrawn(
            partner_id="school-de-regenboog",
            subject=child,
            withdraws=withdraws,
            reason=WithdrawalReason.RESOLVED,
        )

    audited = len(world.uow.recorded)
    unknown = world.run(
        world.intake.withdraw(world.uow, "school-de-regenboog", withdrawal(uuid.uuid4()))
    )
    assert isinstance(unknown, Rejection) and unknown.code == "unknown-registration"
    # Another partner cannot withdraw the school's registration (its id is scoped).
    other = world.run(
        world.intake.withdraw(world.uow, "jgz-voorbeeldrade", withdrawal(sent.event_id))
    )
    assert isinstance(other, Rejection) and other.code == "unknown-registration"
    assert [(r.action, r.outcome) for r in world.uow.recorded[audited:]] == [
        (AuditAction.REJECT, AuditOutcome.DENIED)
    ] * 2
    assert world.published(RegistrationWithdrawn) == []
    assert (
        world.run(
            world.intake.withdraw(world.uow, "school-de-regenboog", withdrawal(sent.event_id))
        )
        is None
    )
    (withdrawn,) = world.published(RegistrationWithdrawn)
    assert (withdrawn.registration_id, withdrawn.subject) == (accepted.signal_id, accepted.subject)


def test_counts_are_released_only_from_k_children() -> None:
    world = World()
    held_before = NOW - timedelta(hours=1)
    for _ in range(9):
        sent = signal("school-de-regenboog", pseudonym(), registered_at=NOW)
        world.run(world.intake.admit(world.uow, SCHOOL, sent, NOW))
    done = world.run(world.intake.release_counts(world.uow, 10, held_before, "v1", 100))
    assert (done.taken, done.published) == (0, 0)  # nine held: fewer than k
    sent = signal("school-de-regenboog", pseudonym(), registered_at=NOW)
    world.run(world.intake.admit(world.uow, SCHOOL, sent, NOW))
    done = world.run(world.intake.release_counts(world.uow, 10, held_before, "v1", 100))
    assert (done.taken, done.published) == (10, 1)
    (cell,) = world.published(WijkThemeCounted)
    assert world.uow.untraced == [cell]  # in no trace: nothing ties it to a signal
    assert (cell.wijk, cell.theme.value, cell.distinct_children) == (
        "WK099903",
        "schoolverzuim",
        10,
    )


def test_a_closed_weeks_key_is_shredded_before_and_after_it_is_unlisted() -> None:
    world = World()
    sent = signal("school-de-regenboog", pseudonym(), registered_at=NOW)
    world.run(world.intake.admit(world.uow, SCHOOL, sent, NOW))
    assert world.run(world.intake.destroy_window_keys(world.units, NOW)) == 0  # not closed
    assert world.run(world.intake.destroy_window_keys(world.units, NOW + timedelta(days=1))) == 1
    name = window_key_name("2026-W48")
    # Shredded while still listed, unlisted, shredded again.
    assert world.keys.steps == [(name, True), (name, False)]
    assert world.run(world.uow.repo.closed_windows(NOW + timedelta(days=30))) == []
    assert world.uow.recorded[-1].object_id == name
    # What was held under the destroyed key can no longer be counted.
    done = world.run(world.intake.release_counts(world.uow, 1, NOW, "v1", 100))
    assert (done.taken, done.published) == (1, 0)

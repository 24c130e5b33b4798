"""One contract for intake's repository (services/intake/ports.IntakeRepository), run
against the in-memory implementation (tests/unit/test_intake_repository.py) and the
PostgreSQL one (tests/integration/test_intake_repository.py). A subclass provides the
`repo` fixture: a fresh, empty repository in one transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.intake.ports import CellCount, IntakeRepository
from shared.contracts import OrganisationCategory, SignalAccepted
from tests.factories import pseudonym

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
BIG = ("WK099901", "pesten", "2026-W49")
SMALL = ("WK099901", "armoede", "2026-W49")


def accepted() -> SignalAccepted:
    signal_id = uuid.uuid4()
    return SignalAccepted(
        event_id=signal_id,
        signal_id=signal_id,
        partner_id="school-de-regenboog",
        subject=pseudonym(),
        organisation="Basisschool De Regenboog",
        organisation_category=OrganisationCategory.ONDERWIJS,
        registered_at=T0,
        age_limit_month="2040-01",
        sealed="v1.AAAA",
        accepted_at=T0,
    )


class IntakeRepositoryContract:
    async def test_an_accepted_signal_is_known_once(self, repo: IntakeRepository) -> None:
        signal = accepted()
        assert not await repo.was_accepted(signal.signal_id)
        await repo.record_accepted(signal)
        assert await repo.was_accepted(signal.signal_id)
        assert await repo.counts() == {"accepted": 1, "rejected": 0}

    async def test_a_refusal_is_kept_once_per_signal(self, repo: IntakeRepository) -> None:
        signal_id = uuid.uuid4()
        await repo.record_rejected(signal_id, "school-de-regenboog", "stale", T0)
        await repo.record_rejected(signal_id, "school-de-regenboog", "over-age", T0)
        assert await repo.counts() == {"accepted": 0, "rejected": 1}
        assert not await repo.was_accepted(signal_id)

    async def test_each_child_counts_once_and_only_cells_grown_by_k_are_released(
        self, repo: IntakeRepository
    ) -> None:
        for n in range(10):
            assert await repo.count_child(BIG, f"{n:032x}")
        assert not await repo.count_child(BIG, f"{0:032x}")  # again
        for n in range(9):
            await repo.count_child(SMALL, f"{n:032x}")
        assert await repo.take_changed_cells(10, 100) == [CellCount(*BIG, 10)]
        assert await repo.take_changed_cells(10, 100) == []
        await repo.count_child(BIG, f"{10:032x}")
        await repo.count_child(SMALL, f"{9:032x}")
        # The small cell reached k: published for the first time; the big one grew by
        # one only, which no published count may tell.
        assert await repo.take_changed_cells(10, 100) == [CellCount(*SMALL, 10)]

    async def test_a_forgotten_window_drops_its_tokens_and_keeps_its_counts(
        self, repo: IntakeRepository
    ) -> None:
        await repo.remember_window("2026-W49", T0)
        await repo.remember_window("2026-W49", T0 + timedelta(days=3))  # the first stays
        await repo.remember_window("2026-W50", T0 + timedelta(days=7))
        for n in range(10):
            await repo.count_child(BIG, f"{n:032x}")
        assert await repo.closed_windows(T0 + timedelta(days=1)) == ["2026-W49"]
        assert await repo.closed_windows(T0 + timedelta(days=8)) == ["2026-W49", "2026-W50"]
        await repo.forget_window("2026-W49")
        assert await repo.closed_windows(T0 + timedelta(days=8)) == ["2026-W50"]
        # The token is gone: the same child would count again (the window is closed, its
        # key destroyed, so no signal can bring it); the count stayed.
        assert await repo.count_child(BIG, f"{0:032x}")
        assert await repo.take_changed_cells(10, 100) == [CellCount(*BIG, 11)]

    async def test_held_observations_are_taken_k_at_a_time_or_when_held_too_long(
        self, repo: IntakeRepository
    ) -> None:
        for n in range(3):
            await repo.hold_observation("2026-W49", f"v1.sealed{n}", T0 + timedelta(minutes=n))
        long_ago = T0 - timedelta(days=1)
        assert await repo.take_observations(4, long_ago, 100) == []
        await repo.hold_observation("2026-W49", "v1.sealed3", T0 + timedelta(minutes=3))
        four = await repo.take_observations(4, long_ago, 100)
        assert [h.sealed for h in four] == [f"v1.sealed{n}" for n in range(4)]  # oldest first
        await repo.hold_observation("2026-W50", "v1.sealed4", T0 + timedelta(minutes=4))
        assert await repo.take_observations(4, long_ago, 100) == []
        (late,) = await repo.take_observations(4, T0 + timedelta(days=1), 100)
        assert (late.window, late.sealed) == ("2026-W50", "v1.sealed4")
        assert await repo.take_observations(1, T0 + timedelta(days=1), 100) == []

    async def test_a_batch_takes_at_most_its_limit(self, repo: IntakeRepository) -> None:
        for n in range(5):
            await repo.hold_observation("2026-W49", f"v1.s{n}", T0 + timedelta(minutes=n))
        assert [h.sealed for h in await repo.take_observations(1, T0, 2)] == ["v1.s0", "v1.s1"]
        for n in range(3):
            for child in range(10):
                await repo.count_child(("WK099901", "pesten", f"2026-W{40 + n}"), f"{child:032x}")
        assert len(await repo.take_changed_cells(10, 2)) == 2
        assert len(await repo.take_changed_cells(10, 2)) == 1

    async def test_recording_a_signal_twice_fails(self, repo: IntakeRepository) -> None:
        signal = accepted()
        await repo.record_accepted(signal)
        with pytest.raises((asyncpg.UniqueViolationError, ValueError)):
            await repo.record_accepted(signal)

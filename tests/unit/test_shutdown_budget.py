"""A stop's steps share one time budget: a step that overruns is cut at the budget's
end and the steps after it are not begun, so the whole stop ends within the budget."""

from __future__ import annotations

import asyncio

import pytest

from shared.service import ShutdownBudget


async def test_the_steps_share_one_budget_and_the_late_ones_are_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Margins far above the loop's delays on a loaded machine: the quick step has 1.5 s.
    budget = ShutdownBudget("intake", seconds=2.0, reserve=0.5)
    done: list[str] = []

    async def quick() -> None:
        await asyncio.sleep(0.05)
        done.append("subscriber")

    async def hanging() -> None:
        await asyncio.Event().wait()
        done.append("never")

    async def flush() -> None:
        done.append("outbox relay")

    await budget.step("subscriber", quick())
    await budget.step("outbox relay stuck", hanging())
    await budget.step("outbox relay", flush())

    # The first step had its time; the hanging one was cut when the budget ran out (not
    # after a full budget of its own), and nothing was left for the last one.
    assert done == ["subscriber"]
    assert budget.left == ["outbox relay stuck", "outbox relay"]
    assert "'outbox relay' not begun" in caplog.text


async def test_a_failing_step_does_not_stop_the_next() -> None:
    budget = ShutdownBudget("audit", seconds=5.0)
    done: list[str] = []

    async def broken() -> None:
        raise RuntimeError("the producer was closed already")

    async def close() -> None:
        done.append("pool closed")

    await budget.step("producer", broken())
    await budget.step("pool", close())
    assert done == ["pool closed"] and budget.left == []


async def test_what_releases_runs_even_when_the_waiting_spent_the_budget() -> None:
    """The producer and the pools are closed however long the waiting took: a process
    that skipped them would hang on what it still holds until it is killed."""
    budget = ShutdownBudget("matching", seconds=1.0, reserve=0.3)
    done: list[str] = []

    async def hanging() -> None:
        await asyncio.Event().wait()

    async def close(what: str) -> None:
        await asyncio.sleep(0.01)
        done.append(what)

    await budget.step("subscriber", hanging())
    await budget.step("background job", hanging())
    await budget.step("the outbox's producer", close("producer"), release=True)
    await budget.step("closing the database pool", close("pool"), release=True)

    assert done == ["producer", "pool"]
    assert budget.left == ["subscriber", "background job"]

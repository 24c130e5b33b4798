"""A message that fails is tried again after a growing pause, never in a tight loop, and
dead-lettered after its last try."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from shared.kafka import HANDLER_FAILURES, RetryBackoff


class Boom(Exception):
    pass


class Letters:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, str, str]] = []

    async def send(self, message: Any, reason_code: str, reason: str) -> None:
        self.sent.append((message, reason_code, reason))


def message(offset: int) -> Any:
    return SimpleNamespace(raw_message=SimpleNamespace(topic="t", partition=0, offset=offset))


async def test_pauses_double_and_a_success_ends_the_tries(monkeypatch: Any) -> None:
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr("shared.kafka.asyncio.sleep", sleep)
    backoff = RetryBackoff("test-consumer", base=0.001, cap=0.004, max_attempts=100)
    before = HANDLER_FAILURES.labels("test-consumer")._value.get()
    tries = 0

    async def fails_four_times() -> None:
        nonlocal tries
        tries += 1
        if tries <= 4:
            raise Boom

    letters = Letters()
    await backoff.retried(message(7), fails_four_times, cast(Any, letters))
    assert tries == 5
    assert pauses == [0.001, 0.002, 0.004, 0.004]
    assert HANDLER_FAILURES.labels("test-consumer")._value.get() == before + 4
    assert letters.sent == []


async def test_a_message_failing_every_try_is_dead_lettered_once(monkeypatch: Any) -> None:
    async def sleep(seconds: float) -> None:
        pass

    monkeypatch.setattr("shared.kafka.asyncio.sleep", sleep)
    backoff = RetryBackoff("test-consumer", max_attempts=3)
    tries = 0

    async def always() -> None:
        nonlocal tries
        tries += 1
        raise Boom

    letters = Letters()
    poison = message(9)
    await backoff.retried(poison, always, cast(Any, letters))
    assert tries == 3
    ((sent, code, reason),) = letters.sent
    assert sent is poison
    assert code == "processing-failed"
    assert "failed 3 times (Boom)" in reason

"""A message that fails is tried again after a growing pause, never in a tight loop, and
dead-lettered after its last try; its count of tries outlives the batch it came in."""

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


async def failing() -> None:
    raise Boom


async def working() -> None:
    pass


async def test_pauses_double_per_message_and_a_success_forgets_it(monkeypatch: Any) -> None:
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr("shared.kafka.asyncio.sleep", sleep)
    backoff = RetryBackoff("test-consumer", base=0.001, cap=0.004, max_attempts=100)
    letters = cast(Any, Letters())
    before = HANDLER_FAILURES.labels("test-consumer")._value.get()
    # Each try is one delivery of the message: it failed and must come again.
    for _ in range(4):
        assert not await backoff.apply(message(7), failing, letters)
    assert backoff.attempts(("t", 0, 7)) == 4
    assert pauses == [0.001, 0.002, 0.004, 0.004]
    assert HANDLER_FAILURES.labels("test-consumer")._value.get() == before + 4
    # Another message's success does not reset this one's count ...
    assert await backoff.apply(message(8), working, letters)
    assert backoff.attempts(("t", 0, 7)) == 4
    # ... its own success does.
    assert await backoff.apply(message(7), working, letters)
    assert backoff.attempts(("t", 0, 7)) == 0
    assert letters.sent == []


async def test_a_message_failing_every_try_is_dead_lettered_once(monkeypatch: Any) -> None:
    async def sleep(seconds: float) -> None:
        pass

    monkeypatch.setattr("shared.kafka.asyncio.sleep", sleep)
    backoff = RetryBackoff("test-consumer", max_attempts=3)
    letters = Letters()
    poison = message(9)
    assert not await backoff.apply(poison, failing, cast(Any, letters))
    assert not await backoff.apply(poison, failing, cast(Any, letters))
    # The last try: dead-lettered, done with, forgotten.
    assert await backoff.apply(poison, failing, cast(Any, letters))
    ((sent, code, reason),) = letters.sent
    assert sent is poison
    assert code == "processing-failed"
    assert "failed 3 times (Boom)" in reason
    assert backoff.attempts(("t", 0, 9)) == 0

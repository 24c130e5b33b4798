"""A failing message is redelivered after a growing pause, never in a tight loop."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from shared.kafka import HANDLER_FAILURES, RetryBackoff


class Boom(Exception):
    pass


def message(offset: int) -> Any:
    return SimpleNamespace(raw_message=SimpleNamespace(topic="t", partition=0, offset=offset))


async def failing(msg: Any) -> Any:
    raise Boom


async def working(msg: Any) -> str:
    return "done"


async def test_pauses_double_per_message_and_a_success_forgets_it() -> None:
    backoff = RetryBackoff("test-consumer", base=0.001, cap=0.004, max_attempts=100)
    before = HANDLER_FAILURES.labels("test-consumer")._value.get()
    for _ in range(4):
        with pytest.raises(Boom):
            await backoff.middleware(None, context=None).consume_scope(failing, message(7))
    assert backoff.attempts(("t", 0, 7)) == 4
    assert [backoff.pause(n) for n in (1, 2, 3, 4)] == [0.001, 0.002, 0.004, 0.004]
    assert HANDLER_FAILURES.labels("test-consumer")._value.get() == before + 4
    # Another message's success does not reset this one's count ...
    await backoff.middleware(None, context=None).consume_scope(working, message(8))
    assert backoff.attempts(("t", 0, 7)) == 4
    # ... its own success does.
    result = await backoff.middleware(None, context=None).consume_scope(working, message(7))
    assert result == "done"
    assert backoff.attempts(("t", 0, 7)) == 0

"""A failing message is redelivered after a growing pause, never in a tight loop."""

from __future__ import annotations

from typing import Any

import pytest

from shared.kafka import HANDLER_FAILURES, RetryBackoff


class Boom(Exception):
    pass


async def test_each_consecutive_failure_doubles_the_pause_and_success_resets_it() -> None:
    backoff = RetryBackoff("test-consumer", base=0.001, cap=0.004)
    before = HANDLER_FAILURES.labels("test-consumer")._value.get()

    async def failing(msg: Any) -> Any:
        raise Boom

    async def working(msg: Any) -> str:
        return "done"

    pauses = []
    for _ in range(4):
        with pytest.raises(Boom):
            await backoff.middleware(None, context=None).consume_scope(failing, None)
        pauses.append(backoff.pause())
    assert pauses == [0.001, 0.002, 0.004, 0.004]
    assert HANDLER_FAILURES.labels("test-consumer")._value.get() == before + 4
    assert await backoff.middleware(None, context=None).consume_scope(working, None) == "done"
    assert backoff.failures == 0

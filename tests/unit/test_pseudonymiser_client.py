"""The partner's pseudonymiser client asks again while the pseudonymiser is busy or out
of reach, and gives up with a clear message after its last try; a refusal (a spent
budget) is not asked again. Over httpx's mock transport, answered by the real key ring."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from services.pseudonymiser.domain import KeyRing
from vroegsignaal.partner.config import PseudonymiserAccess
from vroegsignaal.partner.pseudonymise import (
    PseudonymisationError,
    Pseudonymiser,
    bsn_input,
)

RING = KeyRing.from_seeds({"v1": bytes(range(32))}, "v1")


def access() -> PseudonymiserAccess:
    return PseudonymiserAccess(
        url="http://pseudonymiser.test",
        token="t" * 32,
        key_version="v1",
        public_keys={"v1": RING.public_keys()["v1"].hex()},
    )


def evaluated(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    blinded = [base64.b64decode(b) for b in body["blinded"]]
    return httpx.Response(
        200,
        json={
            "key_version": "v1",
            "evaluation": base64.b64encode(RING.evaluate("v1", blinded, max_batch=1000)).decode(),
        },
    )


async def test_a_busy_or_unreachable_pseudonymiser_is_asked_again() -> None:
    answers: list[Any] = [
        httpx.ReadTimeout("timed out"),
        httpx.ConnectError("refused"),
        httpx.Response(429, json={"error": "rate-limited", "reason": "retry later"}),
        httpx.Response(503, text="busy"),
        evaluated,
    ]
    seen = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal seen
        next_answer = answers[seen]
        seen += 1
        if isinstance(next_answer, Exception):
            raise next_answer
        return next_answer(request) if callable(next_answer) else next_answer

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        client = Pseudonymiser(access(), http, tries=5, pause=0.001)
        made = await client.pseudonyms([bsn_input("999990019"), bsn_input("999990020")])
    assert seen == 5
    assert len(made) == 2 and made[0] != made[1]
    # The same BSN gives the same pseudonym, whichever try answered.
    async with httpx.AsyncClient(transport=httpx.MockTransport(evaluated)) as http:
        again = await Pseudonymiser(access(), http).pseudonyms([bsn_input("999990019")])
    assert again == made[:1]


async def failing(answer: httpx.Response | Exception, tries: int) -> tuple[str, int]:
    """What the client says when every try gets `answer`, and how often it asked."""
    asked = 0

    def always(request: httpx.Request) -> httpx.Response:
        nonlocal asked
        asked += 1
        if isinstance(answer, Exception):
            raise answer
        return answer

    async with httpx.AsyncClient(transport=httpx.MockTransport(always)) as http:
        client = Pseudonymiser(access(), http, tries=tries, pause=0.001)
        with pytest.raises(PseudonymisationError) as failed:
            await client.pseudonyms([bsn_input("999990019")])
    return str(failed.value), asked


async def test_it_gives_up_after_its_last_try_and_says_what_to_do() -> None:
    message, asked = await failing(httpx.ReadTimeout(""), tries=3)
    assert asked == 3
    # In the partner's language (Dutch by default): what failed, how often, what to do.
    assert "(ReadTimeout, 3 pogingen)" in message and "verstuur opnieuw" in message
    assert "999990019" not in message


async def test_a_spent_budget_is_not_asked_again() -> None:
    spent = httpx.Response(
        429, json={"error": "daily-budget-exhausted", "reason": "the budget renews at 00:00"}
    )
    message, asked = await failing(spent, tries=6)
    assert asked == 1
    assert "(429)" in message and "renews" in message


async def test_a_proxys_bare_429_is_busy_and_a_pseudonymiser_that_stays_busy_says_so() -> None:
    proxy = httpx.Response(429, text="Too Many Requests", headers={"retry-after": "0"})
    message, asked = await failing(proxy, tries=3)
    assert asked == 3
    assert "bleef bezet (429, 3 pogingen)" in message


async def test_a_misconfigured_address_is_not_asked_again() -> None:
    wrong = httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'htp://'")
    message, asked = await failing(wrong, tries=6)
    assert asked == 1
    assert "UnsupportedProtocol" in message

"""The one way a service takes events (`ServiceRuntime.consume`), on FastStream's test
broker: each message goes to the handler of the contract its event-type header names,
one without the header to the topic's default, and one of a type nobody takes, or one
that does not decode, to the dead-letter topic with a reason naming the fix."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, cast

import pytest
from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker
from prometheus_client import CollectorRegistry

from shared.contracts import ContractError, ErasureReviewRequested, SubjectErased, Topics, decode
from shared.outbox import EVENT_TYPE_HEADER
from shared.service import ServiceRuntime
from shared.settings import Settings
from tests.factories import erasure_review, pseudonym


class Letters:
    """What the service's dead-letter sink was given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def decode(self, model: type[Any], message: KafkaMessage) -> Any:
        record = message.raw_message
        try:
            return decode(model, record.value, max_bytes=65536)  # type: ignore[union-attr]
        except ContractError as exc:
            self.sent.append((exc.code, exc.reason))
            return None

    async def send(self, message: KafkaMessage, reason_code: str, reason: str) -> None:
        self.sent.append((reason_code, reason))


async def test_events_go_to_their_contracts_handler_and_the_rest_to_dead_letters() -> None:
    broker = KafkaBroker()
    letters = Letters()
    runtime = ServiceRuntime(
        name="matching",
        settings=Settings(),
        broker=broker,
        topics=Topics(""),
        registry=CollectorRegistry(),
        service_dir=Path("."),
        audit=cast(Any, None),
        dead_letters=cast(Any, letters),
    )
    got: list[tuple[str, Any]] = []

    async def on_erased(_: KafkaMessage, erased: SubjectErased) -> None:
        got.append(("erased", erased.event_id))

    async def on_review(_: KafkaMessage, review: ErasureReviewRequested) -> None:
        got.append(("review", review.event_id))

    runtime.consume(
        "requests",
        handlers={SubjectErased: on_erased, ErasureReviewRequested: on_review},
        default=SubjectErased,
    )
    # A second topic of the same group, with a handler of its own: one consumer takes
    # both, and a type is taken only on the topic whose handlers name it.
    runtime.consume("reviews", handlers={ErasureReviewRequested: on_review})
    runtime.subscribe()
    assert len(broker.subscribers) == 1
    erased = SubjectErased(
        subject=pseudonym(), request_id=uuid.uuid4(), partner_id="school-de-regenboog"
    )
    review = erasure_review(pseudonym())
    typed = {EVENT_TYPE_HEADER: "SubjectErased"}
    async with TestKafkaBroker(broker) as test:
        await test.publish(erased.to_bytes(), "requests", headers=typed)
        await test.publish(
            review.to_bytes(), "requests", headers={EVENT_TYPE_HEADER: "ErasureReviewRequested"}
        )
        await test.publish(erased.to_bytes(), "requests")  # no header: the default
        await test.publish(erased.to_bytes(), "requests", headers={EVENT_TYPE_HEADER: ""})
        await test.publish(erased.to_bytes(), "requests", headers={EVENT_TYPE_HEADER: "Nope"})
        await test.publish(b"{not json", "requests", headers=typed)
        await test.publish(
            review.to_bytes(), "reviews", headers={EVENT_TYPE_HEADER: "ErasureReviewRequested"}
        )
        await test.publish(erased.to_bytes(), "reviews", headers=typed)  # not taken there
        await test.publish(review.to_bytes(), "reviews")  # no default on that topic
    assert got == [
        ("erased", erased.event_id),
        ("review", review.event_id),
        ("erased", erased.event_id),
        ("erased", erased.event_id),
        ("review", review.event_id),
    ]
    (unknown_code, unknown_reason), (broken_code, _), *on_reviews = letters.sent
    assert unknown_code == "unknown-event-type"
    assert "'Nope'" in unknown_reason
    assert "ErasureReviewRequested, SubjectErased" in unknown_reason
    assert broken_code != "unknown-event-type"  # the decoder's own reason
    assert on_reviews == [
        (
            "unknown-event-type",
            f"no handler for event type 'SubjectErased' on this topic: set the "
            f"{EVENT_TYPE_HEADER} header to one of ErasureReviewRequested",
        ),
        (
            "unknown-event-type",
            f"no handler for event type 'untyped' on this topic: set the "
            f"{EVENT_TYPE_HEADER} header to one of ErasureReviewRequested",
        ),
    ]

    # Mistakes at start, not messages redelivered forever or taken twice.
    fresh = ServiceRuntime(
        name="matching",
        settings=Settings(),
        broker=KafkaBroker(),
        topics=Topics(""),
        registry=CollectorRegistry(),
        service_dir=Path("."),
        audit=cast(Any, None),
        dead_letters=cast(Any, letters),
    )
    with pytest.raises(ValueError, match="ErasureReviewRequested has no handler"):
        fresh.consume("other", handlers={SubjectErased: on_erased}, default=ErasureReviewRequested)
    fresh.consume("other", handlers={SubjectErased: on_erased})
    with pytest.raises(ValueError, match="other is consumed twice"):
        fresh.consume("other", handlers={SubjectErased: on_erased})
    with pytest.raises(ValueError, match="two sets of options"):
        fresh.consume("more", handlers={SubjectErased: on_erased}, max_records=1)
    fresh.consume("more", handlers={SubjectErased: on_erased}, group="apart", max_records=1)
    fresh.subscribe()
    assert len(fresh.broker.subscribers) == 2
    with pytest.raises(RuntimeError, match="after the subscribers were built"):
        fresh.consume("late", handlers={SubjectErased: on_erased})

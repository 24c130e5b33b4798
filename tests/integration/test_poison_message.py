"""A message that fails every time is dead-lettered after bounded retries; the partition
moves on to the next message. Against the real broker."""

from __future__ import annotations

import asyncio

import pytest
from faststream import AckPolicy
from faststream.kafka import KafkaMessage
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from shared.contracts import DeadLetter, Topics
from shared.kafka import create_broker
from shared.settings import Settings
from tests.conftest import eventually
from tests.kafka_tools import read_topic

pytestmark = pytest.mark.integration


async def test_a_poison_message_is_dead_lettered_and_does_not_block(settings: Settings) -> None:
    settings = settings.model_copy(update={"retry_max_attempts": 3, "retry_base_seconds": 0.05})
    topics = Topics(settings.topic_prefix)
    topic = topics.accepted
    broker, _ = create_broker(
        settings,
        client_id="poison-test",
        tracer_provider=TracerProvider(),
        registry=CollectorRegistry(),
    )
    processed: list[bytes] = []
    tries = 0

    @broker.subscriber(
        topic,
        group_id=f"{settings.topic_prefix}poison-test",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
    )
    async def handle(message: KafkaMessage) -> None:
        nonlocal tries
        if message.body == b"poison":
            tries += 1
            raise RuntimeError("this message can never be processed")
        processed.append(message.body)

    await broker.start()
    try:
        await broker.publish(b"poison", topic, key=b"same-key")
        await broker.publish(b"fine", topic, key=b"same-key")

        async def moved_on() -> bool:
            return processed == [b"fine"]

        await eventually(moved_on, timeout=30)
        letters = await read_topic(
            settings.kafka_bootstrap_servers, topics.deadletter, until=lambda rs: len(rs) >= 1
        )
        letter = DeadLetter.model_validate_json(letters[0].value)
        assert letter.reason_code == "processing-failed"
        assert "RuntimeError" in letter.reason
        assert tries == 3
        await asyncio.sleep(0.5)
        assert tries == 3  # dead-lettered means acked: it does not come back
    finally:
        await broker.stop()

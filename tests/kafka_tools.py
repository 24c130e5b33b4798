"""Reading topics and waiting for consumers to catch up, against the real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.kafka import client_options, read_to_end
from shared.settings import Settings


def login(settings: Settings) -> dict[str, Any]:
    """Where the broker is and how the tests log in to it (the local broker's operator)."""
    return {"bootstrap_servers": settings.kafka_bootstrap_servers, **client_options(settings)}


async def read_topic(
    settings: Settings,
    topic: str,
    *,
    until: Callable[[list[ConsumerRecord]], bool],
    timeout: float = 30.0,
) -> list[ConsumerRecord]:
    """Every record of `topic` from the start, read until `until(records)` holds."""
    consumer = AIOKafkaConsumer(
        topic,
        **login(settings),
        group_id=f"test-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        async with asyncio.timeout(timeout):
            while not until(records):
                batch = await consumer.getmany(timeout_ms=500)
                for part in batch.values():
                    records.extend(part)
    except TimeoutError:
        raise AssertionError(
            f"{topic}: condition not met within {timeout}s after {len(records)} records"
        ) from None
    finally:
        await consumer.stop()
    return records


async def group_lag(settings: Settings, group: str, topics: list[str]) -> int:
    """Messages on `topics` that consumer group `group` has not committed yet."""
    admin = AIOKafkaAdminClient(**login(settings))
    consumer = AIOKafkaConsumer(**login(settings), enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        partitions = [
            TopicPartition(t, p)
            for t in topics
            for p in (consumer.partitions_for_topic(t) or await _partitions(consumer, t))
        ]
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group)
        return sum(
            end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items()
        )
    finally:
        await consumer.stop()
        await admin.close()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


async def read_all(settings: Settings, topic: str) -> list[ConsumerRecord]:
    """Every record on `topic` now, up to its end offsets."""
    return await read_to_end(settings, topic)


async def stable_members(settings: Settings, group: str) -> int:
    """How many members the consumer group has once it is stable (0 while rebalancing)."""
    admin = AIOKafkaAdminClient(**login(settings))
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
        for entry in response.groups:
            _error, group_id, state, *_rest, members = entry[:6]
            if group_id == group and state == "Stable":
                return len(members)
        return 0
    finally:
        await admin.close()

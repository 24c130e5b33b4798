"""The raw ceilings of this machine, measured in the same run as the pipeline: how fast a
plain aiokafka client produces (acks=all, idempotent) and consumes, decodes and commits,
and how fast asyncpg writes rows in batches. Every hop of the pipeline is compared with
these (`make bench`): a hop far below its ceiling does per-message work it need not do.

The messages are the size of an accepted signal (sealed parts included); the rows are a
registration's columns."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

SIGNAL_BYTES = 1200  # an accepted signal on the wire, sealed parts included
PARTITIONS = 3


def _message(n: int) -> bytes:
    body = {"event_id": str(uuid.uuid4()), "n": n, "sealed": ""}
    padding = SIGNAL_BYTES - len(json.dumps(body))
    body["sealed"] = secrets.token_urlsafe(max(padding, 0))[: max(padding, 0)]
    return json.dumps(body).encode()


async def kafka_ceilings(
    login: dict[str, Any], messages: int, *, prefix: str = "", replication: int = 1
) -> dict[str, float]:
    """Produce `messages` signal-sized records (acks=all, idempotent, keyed like the
    pipeline), then consume them in a group, decoding each and committing per fetch. The
    topic (under the stack's `prefix`) is deleted afterwards."""
    topic = f"{prefix}bench-ceiling-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**login)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, replication)])
        return await _produce_and_consume(login, topic, messages)
    finally:
        # The group's offsets go with the topic (Kafka drops those of a deleted topic).
        with contextlib.suppress(KafkaError):
            await admin.delete_topics([topic])
        await admin.close()


async def _produce_and_consume(
    login: dict[str, Any], topic: str, messages: int
) -> dict[str, float]:
    payloads = [_message(n) for n in range(messages)]
    keys = [secrets.token_hex(32).encode() for _ in range(1000)]
    producer = AIOKafkaProducer(
        **login, acks="all", enable_idempotence=True, linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        started = time.perf_counter()
        pending = []
        for n, payload in enumerate(payloads):
            pending.append(await producer.send(topic, payload, key=keys[n % len(keys)]))
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        produced = messages / (time.perf_counter() - started)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        **login,
        group_id=f"{topic}-group",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=2000,
    )
    await consumer.start()
    try:
        started = 0.0  # from the first records: joining the group is not consuming
        seen = 0
        while seen < messages:
            batch = await consumer.getmany(timeout_ms=5000)
            if not batch:
                raise RuntimeError(f"{topic}: only {seen} of {messages} consumed")
            started = started or time.perf_counter()
            for records in batch.values():
                for record in records:
                    json.loads(record.value or b"{}")
                    seen += 1
            await consumer.commit()
        consumed = messages / (time.perf_counter() - started)
    finally:
        await consumer.stop()
    return {"produce_per_second": produced, "consume_commit_per_second": consumed}


async def postgres_ceiling(database_url: str, rows: int, batch: int = 1000) -> dict[str, float]:
    """Registration-shaped rows written in multi-row batches, one transaction each."""
    conn = await asyncpg.connect(database_url)
    table = f"bench_ceiling_{uuid.uuid4().hex[:8]}"
    try:
        await conn.execute(
            f"CREATE TABLE {table} (registration_id uuid PRIMARY KEY, subject text NOT NULL,"
            " organisation text NOT NULL, sealed text NOT NULL, registered_at timestamptz"
            " NOT NULL, expires_at timestamptz NOT NULL)"
        )
        now = datetime.now(UTC)
        sealed = "v1." + secrets.token_urlsafe(600)
        records = [
            (uuid.uuid4(), secrets.token_hex(32), "school", sealed, now, now) for _ in range(rows)
        ]
        started = time.perf_counter()
        for start in range(0, rows, batch):
            async with conn.transaction():
                await conn.executemany(
                    f"INSERT INTO {table} VALUES ($1, $2, $3, $4, $5, $6)",
                    records[start : start + batch],
                )
        written = rows / (time.perf_counter() - started)
        await conn.execute(f"DROP TABLE {table}")
    finally:
        await conn.close()
    return {"batched_insert_per_second": written}

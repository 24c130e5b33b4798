"""A consumer applies what Kafka has for it in one transaction per batch, in order, and
commits the offsets after; a message that always fails is retried and dead-lettered on
its own while the rest of its batch commits once. Against the real broker and database."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaMessage
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from shared.audit import AuditTrail
from shared.batch import ClaimedBefore, batch_transaction
from shared.contracts import DeadLetter, SubjectErased, Topics
from shared.db import Conn, create_pool, migrate, migration_files
from shared.kafka import RelayProducer, create_broker
from shared.outbox import EVENT_TYPE_HEADER, OutboxRelay, enqueue
from shared.service import BATCHES_APPLIED_ALONE, ServiceRuntime
from shared.settings import Settings
from shared.unit_of_work import postgres_units
from tests.conftest import eventually
from tests.factories import pseudonym
from tests.kafka_tools import login, read_topic

pytestmark = pytest.mark.integration

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"


async def test_a_batch_is_one_transaction_and_what_fails_in_it_goes_alone(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"retry_max_attempts": 2, "retry_base_seconds": 0.01})
    topics = Topics(settings.topic_prefix)
    await migrate(settings.database_url, "intake", migration_files(SERVICES_DIR / "intake"))
    pool = await create_pool(settings.database_url, "intake")
    broker, sink = create_broker(
        settings,
        client_id="batch-test",
        tracer_provider=TracerProvider(),
        registry=CollectorRegistry(),
    )
    runtime = ServiceRuntime(
        name="batch-test",
        settings=settings,
        broker=broker,
        topics=topics,
        registry=CollectorRegistry(),
        service_dir=SERVICES_DIR / "intake",
        audit=AuditTrail(service="batch-test", instance="t", topic=topics.audit_of("intake")),
        dead_letters=sink,
    )
    runtime._pool = pool
    subject = pseudonym()
    events = [
        SubjectErased(subject=subject, request_id=uuid.uuid4(), partner_id="school-de-regenboog")
        for _ in range(30)
    ]
    refused, poison = events[5].event_id, events[17].event_id
    units = postgres_units(lambda: pool, lambda conn: conn, runtime.audit, "batch-test")
    tried: list[tuple[uuid.UUID, int]] = []  # (event, transaction) of every try

    async def handle(message: KafkaMessage, erased: SubjectErased) -> None:
        async with units() as uow:
            if not await uow.claim(erased.event_id):
                return
            conn: Conn = uow.conn
            tried.append((erased.event_id, await conn.fetchval("SELECT txid_current()")))
            await enqueue(conn, topics.audit_of("intake"), erased)
            if erased.event_id == poison:
                raise RuntimeError("this message can never be applied")
        if erased.event_id == refused:
            await sink.send(message, "refused-for-test", "refused by the test's handler")

    # All on the topic before the consumer starts, under one key (one partition, in
    # order); one whose event-type header is not even UTF-8.
    producer = AIOKafkaProducer(**login(settings))
    await producer.start()
    try:
        for n, event in enumerate(events):
            kind = b"\xff\xfeSubject" if n == 23 else b"SubjectErased"
            # A header with a null value, which FastStream's parser cannot read either.
            extra = [("x-null", None)] if n == 26 else []
            await producer.send_and_wait(
                topics.accepted, event.to_bytes(), key=subject.encode(),
                headers=[(EVENT_TYPE_HEADER, kind), *extra],
            )  # fmt: skip
    finally:
        await producer.stop()
    runtime.consume(topics.accepted, handlers={SubjectErased: handle}, default=SubjectErased)
    runtime.subscribe()
    split_before = BATCHES_APPLIED_ALONE.labels(runtime.group_id)._value.get()
    await broker.start()
    try:
        letters = await read_topic(
            settings, topics.deadletter, until=lambda rs: len(rs) >= 3, timeout=60
        )
        by_code = {}
        for record in letters:
            letter = DeadLetter.model_validate_json(record.value)
            by_code.setdefault(letter.reason_code, []).append(letter.source_offset)

        async def committed() -> list[uuid.UUID] | None:
            rows = await pool.fetch(
                "SELECT message_id FROM processed_messages WHERE consumer = 'batch-test'"
            )
            return [r["message_id"] for r in rows] if len(rows) >= 28 else None

        claimed = set(await eventually(committed, timeout=30))
        outboxed = await pool.fetchval("SELECT count(*) FROM outbox")
    finally:
        await broker.stop()
        await pool.close()
    # Each refused or failing message has exactly one dead letter: the refusal's, sent
    # in the batch that was rolled back, was not sent then.
    assert {code: len(offsets) for code, offsets in by_code.items()} == {
        "refused-for-test": 1,
        "processing-failed": 1,
        "unknown-event-type": 1,
    }
    assert by_code["processing-failed"] == [17] and by_code["refused-for-test"] == [5]
    assert by_code["unknown-event-type"] == [23]
    # Everything else committed once; the poison message's claim was rolled back.
    expected = {e.event_id for e in events} - {poison, events[23].event_id}
    assert claimed == expected
    # Several messages shared a transaction. The batch the poison message was in was
    # rolled back at it and applied again one message per transaction, in the topic's
    # order; the poison message failed alone, the consumer went back to it (fetched
    # again, as the first of a new batch, which failed at once), and on its second try
    # alone it was dead-lettered; the rest then went on.
    transactions: dict[int, list[uuid.UUID]] = {}
    for event, tx in tried:
        transactions.setdefault(tx, []).append(event)
    failed = min(tx for tx, applied in transactions.items() if poison in applied)
    failed_batch = transactions[failed]
    assert len(failed_batch) > 1 and failed_batch[-1] == poison
    then = sorted(tx for tx in transactions if tx > failed)[: len(failed_batch) + 2]
    assert all(len(transactions[tx]) == 1 for tx in then)
    assert [transactions[tx][0] for tx in then] == [*failed_batch[:-1], poison, poison, poison]
    assert BATCHES_APPLIED_ALONE.labels(runtime.group_id)._value.get() > split_before
    # Every committed message's outbox row was written (in one insert per batch).
    assert outboxed == len(expected)


async def test_an_outbox_row_kafka_can_never_take_is_dead_lettered_and_the_rest_go(
    settings: Settings,
) -> None:
    topics = Topics(settings.topic_prefix)
    await migrate(settings.database_url, "intake", migration_files(SERVICES_DIR / "intake"))
    pool = await create_pool(settings.database_url, "intake")
    broker, sink = create_broker(
        settings, client_id="intake", tracer_provider=TracerProvider(), registry=CollectorRegistry()
    )
    subject = pseudonym()
    before, after = (
        SubjectErased(subject=subject, request_id=uuid.uuid4(), partner_id="school-de-regenboog")
        for _ in range(2)
    )
    topic = topics.audit_of("intake")
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, topic, before)
        # Over the producer's request size (1 MiB): an event that grew without bound.
        await conn.execute(
            "INSERT INTO outbox (topic, key, payload) VALUES ($1, $2, $3)",
            topic,
            subject.encode(),
            b"x" * (1024 * 1024 + 1),
        )
        await enqueue(conn, topic, after)
    producer = RelayProducer(settings, client_id="intake")
    relay = OutboxRelay(
        pool,
        producer,
        schema="intake",
        batch_size=10,
        poll_seconds=0.2,
        refuse=lambda topic, key, payload, why: sink.send_bytes(
            source=topic, key=key, value=payload, reason_code="outbox-unpublishable", reason=why
        ),
    )
    await broker.start()
    await producer.start()
    try:
        await relay.start()
        records = await read_topic(settings, topic, until=lambda rs: len(rs) >= 2)
        (letter,) = await read_topic(settings, topics.deadletter, until=lambda rs: len(rs) >= 1)

        async def emptied() -> bool:
            return await pool.fetchval("SELECT count(*) FROM outbox") == 0

        await eventually(emptied, timeout=10)
    finally:
        await relay.stop()
        await producer.stop()
        await broker.stop()
        await pool.close()
    assert [json.loads(r.value)["event_id"] for r in records] == [
        str(before.event_id),
        str(after.event_id),
    ]
    dead = DeadLetter.model_validate_json(letter.value)
    assert dead.reason_code == "outbox-unpublishable"
    assert dead.original_size == 1024 * 1024 + 1 and dead.source_topic == topic


async def test_a_batch_claims_its_messages_together_and_one_applied_before_rolls_it_back(
    settings: Settings,
) -> None:
    await migrate(settings.database_url, "intake", migration_files(SERVICES_DIR / "intake"))
    pool = await create_pool(settings.database_url, "intake")
    units = postgres_units(lambda: pool, lambda conn: conn, cast(Any, None), "claims-test")
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    async def claimed() -> set[uuid.UUID]:
        rows = await pool.fetch(
            "SELECT message_id FROM processed_messages WHERE consumer = 'claims-test'"
        )
        return {r["message_id"] for r in rows}

    try:
        async with batch_transaction(pool):
            async with units() as uow:
                assert await uow.claim(a)
            async with units() as uow:
                assert await uow.claim(b)
                assert not await uow.claim(b)  # twice in one batch: the second is a repeat
            # Not written one by one: nothing is claimed until the batch commits.
            assert await claimed() == set()
        assert await claimed() == {a, b}
        # b again, with c: taken for new in the batch, refused together at its end, and
        # nothing of the batch is kept.
        with pytest.raises(ClaimedBefore, match="1 of the batch's 2 messages"):
            async with batch_transaction(pool), units() as uow:
                assert await uow.claim(b)
                assert await uow.claim(c)
        assert await claimed() == {a, b}
        # On its own, each claim is answered at once.
        async with units() as uow:
            assert not await uow.claim(b)
            assert await uow.claim(c)
        assert await claimed() == {a, b, c}
    finally:
        await pool.close()

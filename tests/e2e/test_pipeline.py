"""End to end through the real services and the real broker: signals in, match, alerts,
audit, one trace per signal, dead letters, and redelivery that changes nothing."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.contracts import DeadLetter, SignalRegistered, Topics
from shared.settings import Settings
from tests.conftest import eventually
from tests.factories import pseudonym, signal
from tests.kafka_tools import group_lag, read_topic

pytestmark = pytest.mark.e2e

SCHOOL, JGZ, GP = "school-de-regenboog", "jgz-voorbeeldrade", "huisartsen-centrum"


def traceparent() -> tuple[str, bytes]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01".encode()


async def send(
    producer: AIOKafkaProducer, topics: Topics, event: SignalRegistered, trace: bytes
) -> None:
    await producer.send_and_wait(
        topics.partner(event.partner_id),
        event.to_bytes(),
        key=event.subject.encode(),
        headers=[("traceparent", trace), ("content-type", b"application/json")],
    )


async def get_json(url: str) -> Any:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url)
        response.raise_for_status()
        return response.json()


async def settled(settings: Settings) -> bool:
    """Every consumer group caught up and every outbox empty."""
    topics = Topics(settings.topic_prefix)
    partner_topics = [topics.partner(p) for p in (SCHOOL, JGZ, GP)]
    groups = {
        "intake": partner_topics,
        "matching": [topics.accepted],
        "notification": [topics.matches],
        "audit": [topics.audit],
    }
    for name, consumed in groups.items():
        group = f"{settings.topic_prefix}vroegsignaal-{name}"
        if await group_lag(settings.kafka_bootstrap_servers, group, consumed):
            return False
    conn = await asyncpg.connect(settings.database_url)
    try:
        for schema in groups:
            if await conn.fetchval(f'SELECT count(*) FROM "{schema}".outbox'):
                return False
    finally:
        await conn.close()
    return True


async def audit_rows(settings: Settings) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await conn.fetch("SELECT * FROM audit.entries ORDER BY seq")
    finally:
        await conn.close()


async def test_two_organisations_register_the_same_child(
    settings: Settings, services: dict[str, str]
) -> None:
    topics = Topics(settings.topic_prefix)
    child, other_child = pseudonym(), pseudonym()
    school = signal(SCHOOL, child)
    jgz = signal(JGZ, child)
    unrelated = signal(GP, other_child)
    malformed = b'{"schema_version": 1, "partner_id": "school-de-regenboog", "subj'
    oversized = b'{"schema_version": 1, "padding": "' + b"x" * 200_000 + b'"}'
    (_, school_trace), (jgz_trace_id, jgz_trace), (_, gp_trace) = (traceparent() for _ in "abc")

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        # The malformed message shares the school signal's key, so it sits before that
        # signal on the same partition: it must not block it.
        await producer.send_and_wait(topics.partner(SCHOOL), malformed, key=child.encode())
        await producer.send_and_wait(topics.partner(SCHOOL), oversized, key=child.encode())
        await send(producer, topics, school, school_trace)

        async def school_registered() -> bool:
            summary = await get_json(f"{services['matching']}/matches/summary")
            return bool(summary["registrations"] == 1)

        # Only then the second organisation, so the match is raised in the jgz trace.
        await eventually(school_registered, timeout=60)
        await send(producer, topics, jgz, jgz_trace)
        await send(producer, topics, unrelated, gp_trace)

        async def one_match_two_alerts() -> bool:
            matching = await get_json(f"{services['matching']}/matches/summary")
            alerts = await get_json(f"{services['notification']}/alerts/summary")
            return matching == {"registrations": 3, "open_matches": 1} and alerts["alerts"] == 2

        await eventually(one_match_two_alerts, timeout=60)
        await eventually(lambda: settled(settings), timeout=60)

        # Each worker sees one alert that names the other worker, and nothing about why.
        for me, them in ((school.worker, jgz.worker), (jgz.worker, school.worker)):
            inbox = await get_json(f"{services['notification']}/alerts?worker={me.worker_id}")
            assert len(inbox["alerts"]) == 1
            alert = inbox["alerts"][0]
            assert [c["worker_id"] for c in alert["contacts"]] == [them.worker_id]
            assert "category" not in json.dumps(alert)
            assert child not in json.dumps(alert)
        async with httpx.AsyncClient(timeout=5) as client:
            no_free_search = await client.get(f"{services['notification']}/alerts")
        assert no_free_search.status_code == 400

        # Bad input is dead-lettered with its reason and its original bytes (an oversized
        # message only with its first bytes), in the order it came.
        letters = [
            DeadLetter.model_validate_json(r.value)
            for r in await read_topic(
                settings.kafka_bootstrap_servers, topics.deadletter, until=lambda rs: len(rs) >= 2
            )
        ]
        assert [d.reason_code for d in letters] == ["malformed-json", "oversized"]
        assert {d.source_topic for d in letters} == {topics.partner(SCHOOL)}
        assert base64.b64decode(letters[0].original_value) == malformed
        assert not letters[0].original_truncated
        assert letters[1].original_truncated
        assert letters[1].original_size == len(oversized)
        kept = base64.b64decode(letters[1].original_value)
        assert oversized.startswith(kept)
        assert len(kept) == settings.max_message_bytes

        # Every step is audited, the inbox reads too, and the jgz signal is one trace
        # through every hop.
        await eventually(lambda: settled(settings), timeout=60)
        rows = await audit_rows(settings)
        steps = {(r["source_system"], r["action"], r["object_type"]) for r in rows}
        assert {
            ("intake", "create", "signal"),
            ("matching", "create", "registration"),
            ("matching", "create", "match"),
            ("notification", "notify", "alert"),
            ("notification", "read", "alert-list"),
        } <= steps
        in_trace = {r["source_system"] for r in rows if r["trace_id"] == jgz_trace_id}
        assert in_trace == {"intake", "matching", "notification"}
        assert sum(r["object_type"] == "match" for r in rows) == 1
        alert_records = await read_topic(
            settings.kafka_bootstrap_servers, topics.alerts, until=lambda rs: len(rs) >= 2
        )
        for record in alert_records:
            assert jgz_trace_id in dict(record.headers)["traceparent"].decode()
        # Nothing on any topic or in the audit log holds the category of the concern.
        assert all(school.category.value not in r["purpose"] for r in rows)

        # Publishing the same events again changes nothing.
        entries_before = len(rows)
        await send(producer, topics, school, school_trace)
        await send(producer, topics, jgz, jgz_trace)
        await send(producer, topics, unrelated, gp_trace)
        await eventually(lambda: settled(settings), timeout=60)
        assert await get_json(f"{services['matching']}/matches/summary") == {
            "registrations": 3,
            "open_matches": 1,
        }
        assert (await get_json(f"{services['notification']}/alerts/summary"))["alerts"] == 2
        assert len(await audit_rows(settings)) == entries_before
    finally:
        await producer.stop()

"""The registration desk against the real PostgreSQL and Kafka: its login owns its own
schema and reaches nothing of the municipality's; a registration kept while Kafka could
not take it is sent by the desk's relay, once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from shared.contracts import Topics
from shared.settings import Settings
from tests.conftest import eventually
from tests.kafka_tools import read_topic
from vroegsignaal.dev.desk import provision_desk_database, write_desk_config
from vroegsignaal.partner.desk import store
from vroegsignaal.partner.desk.app import Desk
from vroegsignaal.partner.desk.config import DeskConfig
from vroegsignaal.provision.secrets import Secrets

pytestmark = pytest.mark.integration

SCHOOL, ORGANISATION = "school-de-regenboog", "Basisschool De Regenboog"


async def test_the_desks_login_reaches_its_own_schema_and_nothing_else(
    settings: Settings, secrets: Secrets
) -> None:
    desk_url = await provision_desk_database(settings.database_url, secrets)
    conn = await asyncpg.connect(desk_url)
    try:
        await conn.execute("CREATE TABLE desk.scratch (n int)")  # its own schema
        for attempt in (
            "SELECT count(*) FROM intake.outbox",
            "SELECT count(*) FROM notification.match_parties",
            "SELECT count(*) FROM audit.entries",
            "CREATE SCHEMA elsewhere",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(attempt)
    finally:
        await conn.close()


async def test_a_registration_kept_while_kafka_could_not_take_it_is_sent_by_the_relay_once(
    settings: Settings, secrets: Secrets, tmp_path: Path
) -> None:
    desk_url = await provision_desk_database(settings.database_url, secrets)
    config = DeskConfig.load(write_desk_config(secrets, settings, tmp_path, "http://127.0.0.1:9"))
    desk = Desk(settings.model_copy(update={"desk_database_url": desk_url}), config)
    await desk.start()
    try:
        partner = desk.partners[ORGANISATION]
        worker = partner.sealing.worker("school-de-regenboog-1")
        registration, child = uuid.uuid4(), os.urandom(32).hex()
        content: dict[str, Any] = {
            "child": child,
            "parents": [],
            "household": None,
            "age_limit_month": f"{datetime.now(UTC).year + 12}-03",
            "category": "pesten",
            "wijk": "WK099901",
            "reference": "LLN-2026-099",
            "worker": {
                "worker_id": "school-de-regenboog-1",
                "display_name": "Lotte de Jong",
                "email": "school-de-regenboog-1@voorbeeldrade.example",
                "phone": None,
            },
            "registered_at": datetime.now(UTC).isoformat(),
        }
        assert desk.pool is not None
        async with desk.pool.acquire() as conn:
            # What the desk keeps before it produces: Kafka did not take it then.
            await store.add(conn, partner.sealing, worker, registration, content)
            [kept] = await store.of_worker(conn, partner.sealing, worker)
        assert kept.sent_at is None
        relay = asyncio.create_task(desk.relay(interval=0.2))
        try:

            async def sent() -> bool:
                assert desk.pool is not None
                async with desk.pool.acquire() as conn:
                    found = await store.one(conn, partner.sealing, worker, registration)
                return found is not None and found.sent_at is not None

            await eventually(sent, timeout=30)
            await asyncio.sleep(1)  # a few more rounds of the relay: nothing again
        finally:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
    finally:
        await desk.stop()
    topic = Topics(settings.topic_prefix).partner(SCHOOL)
    records = await read_topic(settings, topic, until=lambda rs: len(rs) >= 1)
    assert [(r.key, dict(r.headers)["vs-event-type"]) for r in records] == [
        (child.encode(), b"SignalRegistered")
    ]
    with pytest.raises(AssertionError, match="after 1 records"):  # and no second one
        await read_topic(settings, topic, until=lambda rs: len(rs) >= 2, timeout=5)

"""Database semantics every service relies on, against a real PostgreSQL (and Kafka)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from shared.contracts import AuditAction, AuditActor, AuditEvent, AuditOutcome, Topics
from shared.db import claim_message, create_pool, hashtext, lock, migrate, migration_files, try_lock
from shared.kafka import create_broker, read_to_end
from shared.outbox import OutboxRelay, enqueue
from shared.settings import Settings
from tests.conftest import eventually
from tests.kafka_tools import login, read_topic
from vroegsignaal.provision.database import login_of
from vroegsignaal.provision.secrets import Secrets

pytestmark = pytest.mark.integration

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"


def audit_event() -> AuditEvent:
    return AuditEvent(
        action=AuditAction.READ,
        outcome=AuditOutcome.SUCCESS,
        actor=AuditActor(actor_id="tester", role="service"),
        object_type="test",
        source_system="tests",
        source_instance="t1",
        purpose="integration test",
    )


async def test_migrations_apply_once_and_are_recorded(database_url: str) -> None:
    files = migration_files(SERVICES_DIR / "matching")
    first = await migrate(database_url, "matching", files)
    again = await migrate(database_url, "matching", files)
    assert first == [
        "shared/000_messaging.sql",
        "shared/001_audit_topic_per_service.sql",
        "matching/001_registrations_and_matches.sql",
        "matching/002_published_counts.sql",
        "matching/003_age_limit_month.sql",
        "matching/004_counts_from_intake.sql",
        "matching/005_family_keys.sql",
        "matching/006_random_cluster_ids.sql",
        "matching/007_registration_partner.sql",
    ]
    assert again == []


async def test_a_message_is_claimed_once_per_consumer(database_url: str) -> None:
    await migrate(database_url, "intake", migration_files(SERVICES_DIR / "intake"))
    pool = await create_pool(database_url, "intake")
    message_id = uuid.uuid4()
    try:
        async with pool.acquire() as conn:
            assert await claim_message(conn, "intake", message_id)
            assert not await claim_message(conn, "intake", message_id)
            assert await claim_message(conn, "other-consumer", message_id)
            # A claim rolled back with its transaction leaves the message unprocessed.
            fresh = uuid.uuid4()
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    assert await claim_message(conn, "intake", fresh)
                    raise RuntimeError("state change failed")
            assert await claim_message(conn, "intake", fresh)
    finally:
        await pool.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE entries SET purpose = 'changed'",
        "DELETE FROM entries",
        "TRUNCATE entries",
    ],
)
async def test_audit_entries_cannot_be_changed_even_by_the_owner(
    database_url: str, statement: str
) -> None:
    await migrate(database_url, "audit", migration_files(SERVICES_DIR / "audit"))
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "audit"})
    try:
        await conn.execute(
            "INSERT INTO entries (leaf_index, leaf_hash, event_id, occurred_at, recorded_at,"
            " action, outcome, actor_id, actor_role, subjects, object_type, source_system,"
            " source_instance, purpose, canonical) VALUES (0, '\\x00', $1, now(), now(),"
            " 'read', 'success', 'x', 'service', '{}', 'test', 'tests', 't1', 'p', '\\x00')",
            uuid.uuid4(),
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM entries") == 1
    finally:
        await conn.close()


async def test_the_outbox_publishes_only_what_committed(settings: Settings) -> None:
    await migrate(settings.database_url, "intake", migration_files(SERVICES_DIR / "intake"))
    pool = await create_pool(settings.database_url, "intake")
    topic = Topics(settings.topic_prefix).audit_of("intake")
    committed, rolled_back = audit_event(), audit_event()
    tracer = TracerProvider().get_tracer("test")
    broker, _ = create_broker(
        settings, client_id="test", tracer_provider=TracerProvider(), registry=CollectorRegistry()
    )
    await broker.start()
    relay = OutboxRelay(pool, broker, schema="intake", batch_size=10, poll_seconds=0.2)
    try:
        with tracer.start_as_current_span("change") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            async with pool.acquire() as conn, conn.transaction():
                await enqueue(conn, topic, committed)
            with pytest.raises(RuntimeError):
                async with pool.acquire() as conn, conn.transaction():
                    await enqueue(conn, topic, rolled_back)
                    raise RuntimeError("the change failed")
        await relay.start()
        records = await read_topic(settings, topic, until=lambda rs: len(rs) >= 1)
        ids = [json.loads(r.value)["event_id"] for r in records]
        assert ids == [str(committed.event_id)]
        headers = dict(records[0].headers)
        assert trace_id in headers["traceparent"].decode()

        async def drained() -> bool:
            # The relay removes a row once the broker acknowledged it: a moment after the
            # record can be read.
            async with pool.acquire() as conn:
                return bool(await conn.fetchval("SELECT count(*) FROM outbox") == 0)

        await eventually(drained, timeout=10)
    finally:
        await relay.stop()
        await broker.stop()
        await pool.close()


async def test_stored_birthdays_become_months_and_no_derived_moment_keeps_the_day(
    database_url: str,
) -> None:
    """Rows of the first version kept the 23rd birthday as a day (the date of birth
    shifted 23 years), and expiries derived from it; the migration leaves only months."""
    files = migration_files(SERVICES_DIR / "matching")
    before = [f for f in files if f.name < "003"]
    await migrate(database_url, "matching", before)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SET search_path TO matching")
        insert = (
            "INSERT INTO registrations (registration_id, subject, organisation,"
            " organisation_category, sealed, registered_at, expires_at, age_cutoff,"
            " ended_at, end_reason, archive_until)"
            " VALUES ($1, 's', 'o', 'jgz', 'v1.AA', $2, $3, $4, $5, $6, $7)"
        )
        at = datetime(2026, 3, 9, 10, tzinfo=UTC)
        live, aged, archived = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        birthday = date(2027, 8, 17)
        await conn.execute(insert, live, at, BIRTHDAY_UTC, birthday, None, None, None)
        await conn.execute(
            insert, aged, at, BIRTHDAY_UTC, birthday, BIRTHDAY_UTC, "age-limit", None
        )
        await conn.execute(
            insert, archived, at, BIRTHDAY_UTC, birthday, at, "expired", BIRTHDAY_UTC
        )
        await migrate(database_url, "matching", files)
        rows = await conn.fetch(
            "SELECT registration_id, age_limit_from, expires_at, ended_at, archive_until"
            " FROM registrations"
        )
        month = datetime(2027, 8, 1, tzinfo=UTC)
        by_id = {r["registration_id"]: r for r in rows}
        assert {r["age_limit_from"] for r in rows} == {date(2027, 8, 1)}
        assert by_id[live]["expires_at"] == month
        assert by_id[live]["archive_until"] is None  # live: nothing archived
        assert by_id[aged]["ended_at"] == month
        assert by_id[archived]["archive_until"] == month
        assert by_id[archived]["ended_at"] == at
        # Nothing in any column still gives the day.
        assert "17" not in {str(v.day) for r in rows for v in r.values() if hasattr(v, "day")}
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE registrations SET age_limit_from = $1", date(2027, 8, 17))
    finally:
        await conn.close()


BIRTHDAY_UTC = datetime(2027, 8, 17, tzinfo=UTC)


async def test_observations_held_by_the_first_version_are_counted_on_upgrade(
    database_url: str,
) -> None:
    """The first version held one observation per signal (with its window token) until a
    release; the upgrade counts what it held into the cells, once per child, and drops it."""
    files = migration_files(SERVICES_DIR / "intake")
    await migrate(database_url, "intake", [f for f in files if f.name < "004"])
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SET search_path TO intake")
        for n, token in enumerate(["a" * 32, "b" * 32, "a" * 32]):
            held = {
                "schema_version": 1,
                "event_id": str(uuid.uuid4()),
                "wijk": "WK099902",
                "theme": "pesten",
                "observed_on": "2026-11-30",
                "window": "2026-W49",
                "child_token": token,
                "organisation_category": "onderwijs" if n else "jgz",
            }
            await conn.execute(
                "INSERT INTO held_observations (observation_id, payload) VALUES ($1, $2)",
                uuid.uuid4(),
                json.dumps(held).encode(),
            )
        await migrate(database_url, "intake", files)
        cells = await conn.fetch("SELECT wijk, theme, window_id, children FROM theme_cells")
        assert [tuple(r.values()) for r in cells] == [("WK099902", "pesten", "2026-W49", 2)]
        assert await conn.fetchval("SELECT to_regclass('intake.held_observations')") is None
    finally:
        await conn.close()


async def test_family_clusters_named_after_a_node_get_random_ids_on_upgrade(
    database_url: str,
) -> None:
    """Before, a cluster was named after its smallest node (a pseudonym) and its family
    match keyed by that name; the upgrade renames each cluster, in every table, at random."""
    files = migration_files(SERVICES_DIR / "matching")
    await migrate(database_url, "matching", [f for f in files if f.name < "006"])
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SET search_path TO matching")
        label = "l:household:" + "a" * 64
        nodes = [label, "s:" + "b" * 64, "s:" + "c" * 64]
        await conn.executemany(
            "INSERT INTO family_nodes (node, cluster) VALUES ($1, $2)", [(n, label) for n in nodes]
        )
        match_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO matches (match_id, kind, key, rule, policy_version)"
            " VALUES ($1, 'family', $2, 'r', 'p')",
            match_id,
            label,
        )
        await conn.execute(
            "INSERT INTO family_keys (cluster, sealed_under) VALUES ($1, $2)", label, "d" * 64
        )
        await migrate(database_url, "matching", files)
        (cluster,) = {r["cluster"] for r in await conn.fetch("SELECT cluster FROM family_nodes")}
        assert re.fullmatch(r"[0-9a-f]{64}", cluster) and cluster not in nodes
        assert await conn.fetchval("SELECT key FROM matches WHERE match_id = $1", match_id) == (
            cluster
        )
        assert await conn.fetchval("SELECT cluster FROM family_keys") == cluster
    finally:
        await conn.close()


async def test_a_partners_daily_budget_holds_across_replicas(settings: Settings) -> None:
    """Two pseudonymiser replicas (two pools) spend one partner's budget at once: never
    more than the budget is evaluated, and a refused request counts nothing."""
    import asyncio

    from services.pseudonymiser import store as oprf_store

    replicas = [await create_pool(settings.database_url, "pseudonymiser") for _ in range(2)]
    day = date(2026, 12, 1)

    async def spend(pool: asyncpg.Pool) -> int | None:
        async with pool.acquire() as conn, conn.transaction():
            return await oprf_store.spend(conn, "school", day, 50, 1000)

    try:
        spent = await asyncio.gather(*(spend(replicas[i % 2]) for i in range(40)))
        async with replicas[0].acquire() as conn:
            used = await oprf_store.used(conn, "school", day)
            other_day = await oprf_store.spend(conn, "school", date(2026, 12, 2), 50, 1000)
    finally:
        for pool in replicas:
            await pool.close()
    granted = sorted(s for s in spent if s is not None)
    assert granted == list(range(50, 1001, 50))  # twenty of forty, each counted once
    assert used == 1000
    assert other_day == 50  # a new day, a new budget


async def test_the_pseudonymisers_rate_holds_across_replicas(
    settings: Settings, secrets: Secrets
) -> None:
    """Two replicas (two logins of the pseudonymiser's own role) share one bucket per
    partner: what one took, the other cannot take again; it refills with time."""
    from services.pseudonymiser import store as pseudonymiser_store

    url = login_of(settings.database_url, "pseudonymiser", secrets.database_passwords())
    replicas = [await create_pool(url["DATABASE_URL"], "pseudonymiser") for _ in range(2)]
    slow = 0.001  # elements per second: no refill worth counting while the test runs

    async def take(replica: int, elements: int, partner: str = "school-de-regenboog",
                   rate: float = slow) -> bool:  # fmt: skip
        async with replicas[replica].acquire() as conn, conn.transaction():
            return await pseudonymiser_store.take(conn, partner, elements, rate, 100)

    try:
        assert await take(0, 60)
        assert not await take(1, 41)  # 40 left, whichever replica asks
        assert await take(1, 40)
        assert not await take(0, 1)
        assert await take(0, 100, partner="jgz-voorbeeldrade")  # a bucket per partner
        assert not await take(0, 101, partner="huisartsen-centrum")  # never above the burst
        assert await take(0, 100, rate=1e9)  # refilled (to the burst, no more)
        assert not await take(1, 1)
    finally:
        for pool in replicas:
            await pool.close()


async def test_audit_events_queued_for_the_shared_topic_go_to_the_services_own(
    database_url: str,
) -> None:
    """An earlier version queued audit events for `audit.events`, which no service may
    write any more: upgrading sends them to the service's own topic, so the relay does
    not stall on them."""
    files = migration_files(SERVICES_DIR / "intake")
    await migrate(database_url, "intake", files[:1])  # the outbox as the earlier version had it
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO intake.outbox (topic, key, payload, headers)"
            " VALUES ('p.audit.events', 'k', '{}', '{}'), ('p.signals.accepted', 'k', '{}', '{}')"
        )
        await migrate(database_url, "intake", files)
        topics = [
            r["topic"] for r in await conn.fetch("SELECT topic FROM intake.outbox ORDER BY id")
        ]
        assert topics == [Topics("p.").audit_of("intake"), "p.signals.accepted"]
    finally:
        await conn.close()


async def test_a_named_lock_excludes_the_previous_releases_way_of_taking_it(
    database_url: str,
) -> None:
    """During a rolling upgrade an instance of the release before takes a lock as
    hashtext(name); one of this release takes it as lock_id(name) and, with previously=,
    that way too: the two never hold it at once, and other names stay free."""
    first = await asyncpg.connect(database_url)
    second = await asyncpg.connect(database_url)
    try:
        async with first.transaction():
            await first.execute("SELECT pg_advisory_xact_lock(hashtext($1))", "match:a")
            async with second.transaction():
                assert not await try_lock(second, "match:a", previously=hashtext)
            async with second.transaction():
                assert await try_lock(second, "match:b", previously=hashtext)
        async with first.transaction():
            await lock(first, ["match:b", "match:a"], previously=hashtext)
            async with second.transaction():
                assert not await second.fetchval(
                    "SELECT pg_try_advisory_xact_lock(hashtext($1))", "match:a"
                )
                assert not await try_lock(second, "match:b")
        async with second.transaction():
            assert await try_lock(second, "match:a", previously=hashtext)
    finally:
        await first.close()
        await second.close()


async def test_a_topic_whose_first_records_were_removed_is_read_to_its_end(
    settings: Settings,
) -> None:
    """Retention removes a topic's oldest records: reading what is left neither waits for
    nor complains about the ones gone (the audit check reads the heads this way)."""
    topic = f"{settings.topic_prefix}retained"
    admin = AIOKafkaAdminClient(**login(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        producer = AIOKafkaProducer(**login(settings))
        await producer.start()
        try:
            for n in range(6):
                await producer.send_and_wait(topic, f"record {n}".encode(), partition=0)
        finally:
            await producer.stop()
        await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(before_offset=4)})
    finally:
        await admin.close()
    records = await read_to_end(settings, topic)
    assert [r.value for r in records] == [b"record 4", b"record 5"]


async def test_an_outbox_that_cannot_publish_says_how_much_waits(settings: Settings) -> None:
    """A relay whose every send fails before Kafka answers (the broker out of reach):
    the rows stay, and the gauge the alert reads counts them, not the last good pass."""
    from aiokafka.errors import KafkaConnectionError
    from prometheus_client import REGISTRY

    class Unreachable:
        async def publish(self, *args: object, **kwargs: object) -> None:
            raise KafkaConnectionError("no broker at this address")

    await migrate(settings.database_url, "intake", migration_files(SERVICES_DIR / "intake"))
    pool = await create_pool(settings.database_url, "intake")
    topic = Topics(settings.topic_prefix).audit_of("intake")
    relay = OutboxRelay(pool, Unreachable(), schema="intake", batch_size=10, poll_seconds=0.1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM outbox")
            for _ in range(3):
                await enqueue(conn, topic, audit_event())
        await relay.start()

        async def counted() -> bool:
            labels = {"service": "intake"}
            return REGISTRY.get_sample_value("vroegsignaal_outbox_pending", labels) == 3

        await eventually(counted, timeout=10)
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 3
    finally:
        await relay.stop()
        await pool.close()

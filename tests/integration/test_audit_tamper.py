"""Tamper evidence of the audit log against the real PostgreSQL: the application cannot
change it; a superuser who does is caught, with a report of what was done."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import asyncpg
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from services.audit import store
from services.audit.check import check
from services.audit.domain import SignedHead, entry_from
from services.audit.handlers import load_signing_key, sign_head
from shared.audit import AuditTrail
from shared.contracts import (
    AuditAction,
    AuditActor,
    AuditEvent,
    AuditOutcome,
    Topics,
    TreeHeadSigned,
)
from shared.db import create_pool, migrate, migration_files
from shared.kafka import create_broker
from shared.outbox import OutboxRelay
from shared.settings import Settings
from tests.kafka_tools import login
from vroegsignaal.provision.secrets import Secrets

pytestmark = pytest.mark.integration

AUDIT_DIR = Path(__file__).resolve().parents[2] / "services" / "audit"


def event(n: int) -> AuditEvent:
    return AuditEvent(
        action=AuditAction.READ,
        outcome=AuditOutcome.SUCCESS,
        actor=AuditActor(actor_id=f"worker-{n}", role="worker"),
        object_type="alert-list",
        object_id=f"worker-{n}",
        source_system="notification",
        source_instance="t1",
        purpose=f"inbox read {n}",
    )


@pytest.fixture
async def log(settings: Settings, secrets: Secrets) -> tuple[Settings, bytes]:
    """A log of 12 entries with signed heads at sizes 8 and 12."""
    await migrate(settings.database_url, "audit", migration_files(AUDIT_DIR))
    doc = yaml.safe_load(secrets.audit_signing_key.read_text())
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(doc["private_key"]))
    pool = await create_pool(settings.database_url, "audit")
    t0 = datetime.now(UTC)
    try:
        for n in range(12):
            async with pool.acquire() as conn, conn.transaction():
                await store.append(conn, entry_from(event(n), t0))
                if n + 1 in (8, 12):
                    size = n + 1
                    root = await store.root(conn, size)
                    head = SignedHead.sign(
                        key, doc["key_id"], size, root, t0 + timedelta(seconds=n)
                    )
                    await store.add_head(conn, head)
    finally:
        await pool.close()
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return settings, public


async def tamper(settings: Settings, *statements: str) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("SET session_replication_role = replica")  # triggers off: superuser
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def report(settings: Settings, public: bytes) -> list[str]:
    return await check(settings, public, with_topic=False)


async def test_an_intact_log_verifies(log: tuple[Settings, bytes]) -> None:
    settings, public = log
    assert await report(settings, public) == []


async def test_the_application_cannot_change_the_log(log: tuple[Settings, bytes]) -> None:
    settings, _ = log
    conn = await asyncpg.connect(settings.database_url)
    try:
        for statement in (
            "UPDATE audit.entries SET purpose = 'x'",
            "DELETE FROM audit.tree_heads",
            "TRUNCATE audit.tree_nodes",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement)
    finally:
        await conn.close()


async def test_a_changed_column_is_reported(log: tuple[Settings, bytes]) -> None:
    settings, public = log
    await tamper(
        settings, "UPDATE audit.entries SET purpose = 'nothing to see' WHERE leaf_index = 3"
    )
    assert await report(settings, public) == [
        "changed entry: leaf 3's purpose differs from the content it was logged with"
    ]


async def test_a_rewritten_entry_is_reported(log: tuple[Settings, bytes]) -> None:
    settings, public = log
    forged = event(99).to_bytes().decode().replace("'", "''")
    await tamper(
        settings,
        f"UPDATE audit.entries SET canonical = convert_to('{forged}', 'UTF8'),"
        f" leaf_hash = sha256('\\x00'::bytea || convert_to('{forged}', 'UTF8')),"
        " purpose = 'inbox read 99', actor_id = 'worker-99', object_id = 'worker-99'"
        " WHERE leaf_index = 5",
    )
    problems = await report(settings, public)
    assert problems == [
        "the log does not match the signed head of size 8: changed entries at leaf indexes 5",
        "the log does not match the signed head of size 12: changed entries at leaf indexes 5",
    ]


async def test_a_deleted_entry_is_reported(log: tuple[Settings, bytes]) -> None:
    settings, public = log
    await tamper(settings, "DELETE FROM audit.entries WHERE leaf_index = 4")
    assert "deleted entries: leaf index 4 is missing" in await report(settings, public)


async def test_reordered_entries_are_reported(log: tuple[Settings, bytes]) -> None:
    settings, public = log
    await tamper(
        settings,
        "UPDATE audit.entries SET leaf_index = -1 WHERE leaf_index = 2",
        "UPDATE audit.entries SET leaf_index = 2 WHERE leaf_index = 6",
        "UPDATE audit.entries SET leaf_index = 6 WHERE leaf_index = -1",
    )
    assert await report(settings, public) == [
        "the log does not match the signed head of size 8: reordered entries at leaf indexes 2, 6",
        "the log does not match the signed head of size 12: reordered entries at leaf indexes 2, 6",
    ]


async def test_a_truncated_tail_is_reported(log: tuple[Settings, bytes]) -> None:
    settings, public = log
    await tamper(settings, "DELETE FROM audit.entries WHERE leaf_index >= 10")
    assert await report(settings, public) == [
        "truncated log: it holds 10 entries, a signed head covers 12"
    ]


async def test_a_kafka_that_cannot_be_read_does_not_hide_a_tampered_database(
    log: tuple[Settings, bytes],
) -> None:
    settings, public = log
    await tamper(settings, "DELETE FROM audit.entries WHERE leaf_index >= 10")
    nowhere = settings.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:1"})
    problems = await check(nowhere, public, with_topic=True)
    assert problems[0].startswith("the published heads could not be read from Kafka")
    assert problems[1:] == ["truncated log: it holds 10 entries, a signed head covers 12"]


async def test_a_forged_head_is_reported(log: tuple[Settings, bytes]) -> None:
    settings, public = log
    await tamper(
        settings,
        "UPDATE audit.tree_heads SET root = sha256('forged'::bytea) WHERE size = 12",
    )
    problems = await report(settings, public)
    assert len(problems) == 1
    assert problems[0].startswith("forged tree head: size 12 at ")


async def test_the_command_exits_non_zero_and_names_the_problem(
    log: tuple[Settings, bytes],
) -> None:
    settings, public = log
    await tamper(settings, "DELETE FROM audit.entries WHERE leaf_index = 7")
    done = subprocess.run(  # noqa: ASYNC221 - the CLI run to its end
        [sys.executable, "-m", "vroegsignaal", "audit", "verify", "--no-topic",
         "--public-key", public.hex()],
        env={"DATABASE_URL": settings.database_url, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "PROBLEM: deleted entries: leaf index 7 is missing" in done.stdout


async def test_a_third_party_verifies_an_export_with_only_the_public_key(
    log: tuple[Settings, bytes], tmp_path: Path
) -> None:
    settings, public = log
    out = tmp_path / "export.jsonl"
    env = {"DATABASE_URL": settings.database_url, "PATH": "/usr/bin:/bin", "VS_OPERATOR": "fg-jan"}
    exported = subprocess.run(  # noqa: ASYNC221 - the CLI run to its end
        [sys.executable, "-m", "vroegsignaal", "audit", "export",
         "--from", "2000-01-01T00:00+00:00", "--to", "2100-01-01T00:00+00:00",
         "--output", str(out)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert "12 entries" in exported.stdout
    # The export is itself logged, as the operator who made it (through the outbox).
    conn = await asyncpg.connect(settings.database_url)
    try:
        (payload,) = [r["payload"] for r in await conn.fetch("SELECT payload FROM audit.outbox")]
    finally:
        await conn.close()
    logged = AuditEvent.model_validate_json(payload)
    assert (logged.action, logged.actor.actor_id, logged.actor.role) == (
        AuditAction.EXPORT,
        "fg-jan",
        "privacy_officer",
    )

    def verify(path: Path, key: bytes) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vroegsignaal", "audit", "verify-export", str(path),
             "--public-key", key.hex()],
            env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=False,
        )  # fmt: skip

    good = verify(out, public)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "all 12 entries are in the signed log" in good.stdout

    altered = tmp_path / "altered.jsonl"
    altered.write_text(out.read_text().replace("inbox read 4", "inbox read 40"))
    bad = verify(altered, public)
    assert bad.returncode == 2
    assert "entry 4 is not in the signed log" in bad.stdout

    other_key = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    forged = verify(out, other_key)
    assert forged.returncode == 2
    assert "signature does not verify" in forged.stdout


async def test_a_head_on_its_way_to_the_topic_is_not_reported_unpublished(
    log: tuple[Settings, bytes],
) -> None:
    """Head 8 is on the topic; head 12 was signed a moment ago and is still in the
    outbox: intact. Once it leaves the outbox without reaching the topic, it is reported."""
    settings, public = log
    topic = Topics(settings.topic_prefix).tree_heads
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("SET search_path TO audit")
        heads = {h.size: h for h in await store.heads(conn)}
        message = {
            size: TreeHeadSigned(
                size=h.size,
                root=h.root.hex(),
                signed_at=h.signed_at,
                key_id=h.key_id,
                signature=h.signature.hex(),
            ).to_bytes()
            for size, h in heads.items()
        }
        await conn.execute(
            "INSERT INTO outbox (topic, payload) VALUES ($1, $2)", topic, message[12]
        )
        producer = AIOKafkaProducer(**login(settings))
        await producer.start()
        try:
            await producer.send_and_wait(topic, message[8])
        finally:
            await producer.stop()
        assert await check(settings, public, with_topic=True) == []
        await conn.execute("DELETE FROM outbox")
    finally:
        await conn.close()
    (problem,) = await check(settings, public, with_topic=True)
    assert problem.startswith("tree head of size 12 at ")
    assert problem.endswith("is in the database but was never published")


async def test_a_log_verified_while_it_grows_and_publishes_heads_is_intact(
    settings: Settings, secrets: Secrets
) -> None:
    """The log never stands still: entries are appended and heads signed and published
    between the verification's reads. None of that is reported as a problem."""
    await migrate(settings.database_url, "audit", migration_files(AUDIT_DIR))
    key_id, key = load_signing_key(secrets.audit_signing_key)
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    pool = await create_pool(settings.database_url, "audit")
    broker, _ = create_broker(
        settings, client_id="test", tracer_provider=TracerProvider(), registry=CollectorRegistry()
    )
    await broker.start()
    relay = OutboxRelay(pool, broker, schema="audit", batch_size=10, poll_seconds=0.05)
    await relay.start()
    # What the audit service's head job is given: its pool, topics and audit trail.
    trail = AuditTrail(service="audit", instance="t1", topic="audit.events")
    service = cast(
        Any, SimpleNamespace(pool=pool, topics=Topics(settings.topic_prefix), audit=trail)
    )
    stop = asyncio.Event()
    signed: list[SignedHead] = []

    async def grow() -> None:
        n = 0
        while not stop.is_set():
            async with pool.acquire() as conn, conn.transaction():
                await store.append(conn, entry_from(event(n), datetime.now(UTC)))
            n += 1
            if n % 3 == 0 and (head := await sign_head(service, key_id, key)) is not None:
                signed.append(head)

    writer = asyncio.create_task(grow())
    try:
        reports = [await check(settings, public, with_topic=True) for _ in range(8)]
    finally:
        stop.set()
        await writer
        await relay.stop()
        await broker.stop()
        await pool.close()
    assert reports == [[]] * 8
    assert len(signed) > 8  # heads were signed and published all along
    # What it left is verified too, once it stands still.
    assert await check(settings, public, with_topic=True) == []

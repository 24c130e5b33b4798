"""Retention of the audit log against the real PostgreSQL: entries past the policy's
retention go only by a signed pruning, which is itself logged and keeps every head and
proof verifiable; a deletion without one, a forged one, or altered nodes are caught."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit import handlers, merkle, store
from services.audit.check import check
from services.audit.domain import SignedHead, SignedPruning, entry_from
from shared.audit import AuditTrail
from shared.contracts import AuditEvent
from shared.db import create_pool, migrate, migration_files
from shared.settings import Settings
from tests.integration.test_audit_tamper import event, tamper
from vroegsignaal.provision.secrets import Secrets

pytestmark = pytest.mark.integration

AUDIT_DIR = Path(__file__).resolve().parents[2] / "services" / "audit"
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=6 * 366)


@pytest.fixture
async def log(settings: Settings, secrets: Secrets) -> tuple[Settings, Ed25519PrivateKey, str]:
    """Twelve entries, the first six recorded six years ago; signed heads at 8 and 12."""
    await migrate(settings.database_url, "audit", migration_files(AUDIT_DIR))
    doc = yaml.safe_load(secrets.audit_signing_key.read_text())
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(doc["private_key"]))
    pool = await create_pool(settings.database_url, "audit")
    try:
        for n in range(12):
            async with pool.acquire() as conn, conn.transaction():
                await store.append(conn, entry_from(event(n), OLD if n < 6 else NOW))
                if n + 1 in (8, 12):
                    size = n + 1
                    head = SignedHead.sign(
                        key, doc["key_id"], size, await store.root(conn, size), NOW
                    )
                    await store.add_head(conn, head)
    finally:
        await pool.close()
    return settings, key, doc["key_id"]


def public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


async def prune(settings: Settings, key: Ed25519PrivateKey, key_id: str) -> int:
    pool = await create_pool(settings.database_url, "audit")
    try:
        trail = AuditTrail(service="audit", instance="t1", topic="audit.events")
        return await handlers.prune(pool, trail, key_id, key, 5, NOW)
    finally:
        await pool.close()


async def test_a_signed_pruning_removes_only_expired_entries_and_keeps_the_tree(
    log: tuple[Settings, Ed25519PrivateKey, str],
) -> None:
    settings, key, key_id = log
    assert await prune(settings, key, key_id) == 6
    assert await prune(settings, key, key_id) == 0  # nothing more is past retention
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("SET search_path TO audit")
        kept = [r["leaf_index"] for r in await conn.fetch("SELECT leaf_index FROM entries")]
        assert sorted(kept) == list(range(6, 12))
        (pruning,) = await store.prunings(conn)
        assert (pruning.upto, pruning.prefix_root) == (6, await store.root(conn, 6))
        assert pruning.verifies(key.public_key())
        # The pruning is itself logged, in the same transaction (the outbox).
        logged = [
            AuditEvent.model_validate_json(r["payload"])
            for r in await conn.fetch("SELECT payload FROM outbox")
        ]
        assert [(e.action.value, e.object_type, e.object_id) for e in logged] == [
            ("delete", "audit-log", "leaves 0-5")
        ]
        # Every head and an inclusion proof across the pruned range still verify.
        heads = await store.heads(conn)
        for head in heads:
            assert await store.root(conn, head.size) == head.root
        leaf = merkle.leaf_hash(
            bytes(await conn.fetchval("SELECT canonical FROM entries WHERE leaf_index = 7"))
        )
        proof = await store.inclusion(conn, 7, 12)
        assert merkle.verify_inclusion(leaf, 7, 12, proof, heads[-1].root)
        # Entries the pruning does not cover cannot be deleted, not even by the owner.
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("DELETE FROM entries WHERE leaf_index = 6")
    finally:
        await conn.close()
    assert await check(settings, public(key), with_topic=False) == []


async def test_a_deletion_without_a_signed_pruning_is_caught(
    log: tuple[Settings, Ed25519PrivateKey, str],
) -> None:
    settings, key, key_id = log
    await prune(settings, key, key_id)
    # Someone removes the record of the pruning: the entries are simply missing.
    await tamper(settings, "DELETE FROM audit.prunings")
    assert "deleted entries: leaf index 0 to 5 is missing" in await check(
        settings, public(key), with_topic=False
    )


async def test_a_forged_pruning_is_caught(log: tuple[Settings, Ed25519PrivateKey, str]) -> None:
    settings, key, _ = log
    root = "'\\x" + "00" * 32 + "'"
    await tamper(
        settings,
        f"INSERT INTO audit.prunings VALUES (9, {root}, now(), now(), 'audit-1', '\\x{'00' * 64}')",
        "DELETE FROM audit.entries WHERE leaf_index < 9",
    )
    problems = await check(settings, public(key), with_topic=False)
    assert any(p.startswith("forged pruning: the removal of leaves below 9") for p in problems)
    assert "deleted entries: leaf index 0 to 8 is missing" in problems


async def test_altered_nodes_of_a_pruned_range_are_caught(
    log: tuple[Settings, Ed25519PrivateKey, str],
) -> None:
    settings, key, key_id = log
    await prune(settings, key, key_id)
    await tamper(
        settings,
        "UPDATE audit.tree_nodes SET hash = sha256(hash) WHERE level = 0 AND position = 2",
    )
    problems = await check(settings, public(key), with_topic=False)
    assert any("no longer form the root the pruning signed" in p for p in problems)


async def test_a_pruning_inside_the_retention_or_of_everything_is_refused(
    log: tuple[Settings, Ed25519PrivateKey, str],
) -> None:
    settings, key, key_id = log
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("SET search_path TO audit")
        root = await store.root(conn, 6)
        recent = SignedPruning.sign(key, key_id, 6, root, NOW - timedelta(days=30), NOW)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="a year back"):
            await store.prune(conn, recent)
        everything = SignedPruning.sign(
            key, key_id, 12, await store.root(conn, 12), NOW - timedelta(days=400), NOW
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="last entry"):
            await store.prune(conn, everything)
        newer = SignedPruning.sign(key, key_id, 8, await store.root(conn, 8), OLD, NOW)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="before its cutoff"):
            await store.prune(conn, newer)  # leaves 6 and 7 are recent
    finally:
        await conn.close()
    # A signed pruning inside the policy's retention, forced in by a superuser, is caught.
    early = SignedPruning.sign(key, key_id, 6, root, NOW - timedelta(days=2 * 366), NOW)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "INSERT INTO audit.prunings VALUES ($1, $2, $3, $4, $5, $6)",
            early.upto, early.prefix_root, early.cutoff, early.pruned_at, early.key_id,
            early.signature,
        )  # fmt: skip
        await conn.execute("DELETE FROM audit.entries WHERE leaf_index < 6")
    finally:
        await conn.close()
    problems = await check(settings, public(key), with_topic=False)
    assert any(p.startswith("early pruning: leaves below 6") for p in problems)


async def test_pruning_never_empties_the_log(
    log: tuple[Settings, Ed25519PrivateKey, str],
) -> None:
    settings, key, key_id = log
    # A log in which every entry is past retention (written six years ago, say).
    await tamper(settings, f"UPDATE audit.entries SET recorded_at = '{OLD.isoformat()}'")
    pool = await create_pool(settings.database_url, "audit")
    try:
        trail = AuditTrail(service="audit", instance="t1", topic="audit.events")
        # All but the last go, in bounded steps.
        assert await handlers.prune(pool, trail, key_id, key, 5, NOW, batch=4) == 4
        assert await handlers.prune(pool, trail, key_id, key, 5, NOW, batch=4) == 4
        assert await handlers.prune(pool, trail, key_id, key, 5, NOW, batch=4) == 3
        assert await handlers.prune(pool, trail, key_id, key, 5, NOW, batch=4) == 0
        async with pool.acquire() as conn:
            assert await store.size(conn) == 12  # the next entry is leaf 12, not 0
    finally:
        await pool.close()

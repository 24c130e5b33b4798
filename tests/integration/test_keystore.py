"""Crypto-shredding against the real PostgreSQL: sealed fields open until the subject's
data key is deleted, then they are erased for every reader, and tampering is caught."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta

import asyncpg
import pytest

from shared.keystore import KeyShredded, KeyStore, SealBroken
from shared.settings import Settings
from tests.conftest import keys_fetchval, keys_url
from tests.factories import pseudonym
from vroegsignaal.provision.database import provision
from vroegsignaal.provision.errors import StackError
from vroegsignaal.provision.secrets import Secrets

pytestmark = pytest.mark.integration


async def test_sealed_fields_open_until_the_subject_is_shredded(settings: Settings) -> None:
    writer = await KeyStore.open(settings)
    reader = await KeyStore.open(settings)  # another process, with a cache of its own
    subject, other = pseudonym(), pseudonym()
    aad = uuid.uuid4().bytes
    try:
        sealed = await writer.seal(subject, aad, b"worker@voorbeeldrade.example", create=True)
        kept = await writer.seal(other, aad, b"other", create=True)
        assert b"worker@" not in sealed.encode()
        assert await reader.open_sealed(subject, aad, sealed) == b"worker@voorbeeldrade.example"
        with pytest.raises(SealBroken):
            await reader.open_sealed(subject, uuid.uuid4().bytes, sealed)  # another event

        assert await writer.shred(subject)
        fresh_reader = await KeyStore.open(settings)
        try:
            with pytest.raises(KeyShredded):
                await fresh_reader.open_sealed(subject, aad, sealed)
            with pytest.raises(KeyShredded):
                await writer.open_sealed(subject, aad, sealed)
            assert await fresh_reader.open_sealed(other, aad, kept) == b"other"
        finally:
            await fresh_reader.close()
        assert not await writer.shred(subject)
    finally:
        await writer.close()
        await reader.close()


async def test_data_keys_are_stored_wrapped_and_reached_through_their_own_role(
    settings: Settings,
) -> None:
    store = await KeyStore.open(settings)
    subject = pseudonym()
    try:
        await store.seal(subject, b"aad", b"x", create=True)
    finally:
        await store.close()
    conn = await asyncpg.connect(keys_url(settings))
    try:
        row = await conn.fetchrow(
            "SELECT kek_version, length(wrapped_key) AS n FROM keystore.data_keys"
            " WHERE subject = $1",
            subject,
        )
        assert row is not None
        assert (row["kek_version"], row["n"]) == ("kek1", 12 + 32 + 16)
        # A role that cannot log in owns the keys' table; the key store's login may
        # read, add and delete keys there and has no right anywhere else.
        owner = await conn.fetchval(
            "SELECT tableowner FROM pg_tables WHERE schemaname = 'keystore'"
            " AND tablename = 'data_keys'"
        )
        assert owner == "vs_keystore_owner"
        grants = await conn.fetch(
            "SELECT privilege_type FROM information_schema.role_table_grants"
            " WHERE grantee = 'vs_keystore' AND table_name = 'data_keys'"
        )
        assert {g["privilege_type"] for g in grants} == {"SELECT", "INSERT", "DELETE"}
        other_schemas = await conn.fetchval(
            "SELECT count(*) FROM information_schema.role_table_grants"
            " WHERE grantee = 'vs_keystore' AND table_schema <> 'keystore'"
        )
        assert other_schemas == 0
    finally:
        await conn.close()


async def test_a_trend_window_key_is_kept_wrapped_and_once_shredded_never_comes_back(
    settings: Settings,
) -> None:
    """Intake's window keys live here, wrapped by the KEK like the data keys: the same
    key for the window until it is shredded, then another, so old tokens link to nothing."""
    store = await KeyStore.open(settings)
    other = await KeyStore.open(settings)  # another intake replica
    try:
        key = await store.token_key("trend-window:2026-W48")
        assert await other.token_key("trend-window:2026-W48") == key
        assert await store.token_key("trend-window:2026-W49") != key
        conn = await asyncpg.connect(keys_url(settings))
        try:
            wrapped = await conn.fetchval(
                "SELECT wrapped_key FROM keystore.data_keys WHERE subject = $1",
                "trend-window:2026-W48",
            )
        finally:
            await conn.close()
        assert wrapped is not None and key not in bytes(wrapped)
        assert await store.shred("trend-window:2026-W48")
        fresh = await KeyStore.open(settings)
        try:
            assert await fresh.token_key("trend-window:2026-W48") != key
        finally:
            await fresh.close()
        with pytest.raises(ValueError, match="prefix"):
            await store.token_key(pseudonym())
    finally:
        await store.close()
        await other.close()


async def test_reshred_takes_keys_made_before_their_shredding_and_keeps_newer_ones(
    settings: Settings,
) -> None:
    """After a restore: a key the log says was shredded at t goes again when it was made
    before t; a key made after t (the subject registered anew) stays."""
    store = await KeyStore.open(settings)
    try:
        old, anew = pseudonym(), pseudonym()
        for subject in (old, anew):
            await store.seal(subject, b"aad", b"fields", create=True)
        made = {
            r["subject"]: r["created_at"]
            for r in await store._pool.fetch("SELECT subject, created_at FROM data_keys")
        }
        again = await store.reshred(
            [(old, made[old] + timedelta(seconds=1)), (anew, made[anew] - timedelta(seconds=1))]
        )
        assert again == [old]
        with pytest.raises(KeyShredded):
            await store.seal(old, b"aad", b"fields", create=False)
        await store.seal(anew, b"aad", b"fields", create=False)
    finally:
        await store.close()


async def keys_kept_the_old_way(
    admin: asyncpg.Connection, keys: list[tuple[str, str, bytes]]
) -> None:
    """The key store as an earlier version kept it: in the application's database."""
    await admin.execute(
        "CREATE SCHEMA keystore; CREATE TABLE keystore.data_keys (subject text PRIMARY KEY,"
        " kek_version text NOT NULL, wrapped_key bytea NOT NULL,"
        " created_at timestamptz NOT NULL DEFAULT now())"
    )
    await admin.executemany(
        "INSERT INTO keystore.data_keys (subject, kek_version, wrapped_key) VALUES ($1, $2, $3)",
        keys,
    )


async def test_migrate_moves_the_keys_out_of_the_applications_database(
    settings: Settings, secrets: Secrets
) -> None:
    """An earlier version kept the data keys in the application's database, so its backups
    held them. `vroegsignaal migrate` moves every key to the key store's own database and
    drops the old schema: the application's database (and its next backups) holds none."""
    admin = await asyncpg.connect(settings.database_url)
    try:
        old = [(pseudonym(), "kek1", os.urandom(60)) for _ in range(3)]
        await keys_kept_the_old_way(admin, old)
        await provision(settings.database_url, secrets.database_passwords())
        assert not await admin.fetchval("SELECT to_regnamespace('keystore') IS NOT NULL")
    finally:
        await admin.close()
    conn = await asyncpg.connect(keys_url(settings))
    try:
        moved = await conn.fetch(
            "SELECT subject, kek_version, wrapped_key FROM keystore.data_keys"
            " WHERE subject = ANY($1)",
            [s for s, _, _ in old],
        )
        assert sorted((r["subject"], r["kek_version"], bytes(r["wrapped_key"])) for r in moved) == (
            sorted(old)
        )
    finally:
        await conn.close()
    # And again: nothing left to move, nothing lost.
    await provision(settings.database_url, secrets.database_passwords())
    assert (
        await keys_fetchval(
            settings,
            "SELECT count(*) FROM keystore.data_keys WHERE subject = ANY($1)",
            [s for s, _, _ in old],
        )
        == 3
    )


async def test_a_key_that_differs_in_the_key_stores_database_stops_the_move(
    settings: Settings, secrets: Secrets
) -> None:
    """Two different keys for one subject: neither is thrown away, nothing is dropped."""
    subject = pseudonym()
    store = await KeyStore.open(settings)  # the keys' own database, with a key for it
    try:
        await store.seal(subject, b"aad", b"x", create=True)
    finally:
        await store.close()
    admin = await asyncpg.connect(settings.database_url)
    try:
        await keys_kept_the_old_way(admin, [(subject, "kek1", os.urandom(60))])
        with pytest.raises(StackError, match="1 of 1 subjects already have another key"):
            await provision(settings.database_url, secrets.database_passwords())
        assert await admin.fetchval("SELECT count(*) FROM keystore.data_keys") == 1
    finally:
        await admin.close()

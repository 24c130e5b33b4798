"""The key store: per-subject data keys for crypto-shredding. The one way in.

Personal fields that travel on topics or rest in tables after intake are sealed with
AES-256-GCM under a data key of their subject, the event id as associated data. Data
keys are kept wrapped by a key-encryption key (KEK) from the secret store, in a database
of their own (`<database>_keys` beside the application's locally; a PostgreSQL cluster of
their own in production, with short backup retention, so that a backup of the
application's data never holds a key), owned by a role of its own (shared/dbroles.py)
that the application logs in as only here (`KEYSTORE_DATABASE_URL`), through this module
only: a KMS can replace it behind the same interface.
`shred(subject)` deletes the key; every copy of that subject's sealed fields, on a topic,
in a dump, in a backup, is unreadable from then on.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from prometheus_client import Counter

from shared.config import VersionedKeys, load_yaml_model
from shared.db import create_pool
from shared.dbroles import KEYSTORE
from shared.settings import Settings

SCHEMA = "keystore"
ROLE = KEYSTORE
MIGRATIONS = Path(__file__).parent / "keystore_migrations"
DATABASE_SUFFIX = "_keys"


def keys_database_url(database_url: str) -> str:
    """The key store's database beside the application's (same server and login, the
    database's name + `_keys`): where it is when nothing else is configured."""
    head, _, tail = database_url.rpartition("/")
    name, query = tail.split("?", 1) if "?" in tail else (tail, "")
    return f"{head}/{name}{DATABASE_SUFFIX}" + (f"?{query}" if query else "")


SEAL_PREFIX = "v1"

SHREDDED = Counter("vroegsignaal_keystore_shredded_total", "Data keys deleted")


class KeyStoreError(RuntimeError):
    """The key store is misconfigured; the message names the fix."""


class KeyShredded(Exception):
    """The subject's data key is gone: its sealed fields are erased, not broken."""


class SealBroken(ValueError):
    """A sealed field was altered, or sealed for another event: never silently accepted."""


@dataclass(frozen=True)
class Kek:
    version: str
    keys: dict[str, bytes]

    @classmethod
    def load(cls, path: Path | None) -> Kek:
        if path is None:
            raise KeyStoreError(
                "VS_KEK_FILE is not set: the key store needs its key-encryption key "
                "('vroegsignaal secrets init' makes one for a local stack)"
            )
        ring = load_yaml_model(
            VersionedKeys, path, error=KeyStoreError, what="the key-encryption key (VS_KEK_FILE)"
        )
        return cls(ring.current, ring.key_bytes())

    def wrap(self, subject: str, data_key: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(12)
        sealed = AESGCM(self.keys[self.version]).encrypt(nonce, data_key, subject.encode())
        return self.version, nonce + sealed

    def unwrap(self, subject: str, version: str, wrapped: bytes) -> bytes:
        key = self.keys.get(version)
        if key is None:
            raise KeyStoreError(f"KEK version {version!r} is not in the KEK file any more")
        return AESGCM(key).decrypt(wrapped[:12], wrapped[12:], subject.encode())


class KeyStore:
    def __init__(
        self, pool: asyncpg.Pool, kek: Kek, *, cache_size: int, cache_seconds: float
    ) -> None:
        self._pool = pool
        self._kek = kek
        self._cache: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_seconds = cache_seconds

    @classmethod
    async def open(cls, settings: Settings) -> KeyStore:
        """The key store, through its own login (`KEYSTORE_DATABASE_URL`); the process's
        own role cannot reach it. Without that setting (an administrator's tools and
        tests), the keys' database beside DATABASE_URL, acting as the key-store role."""
        kek = Kek.load(settings.kek_file)
        own_role = settings.keystore_database_url is None

        async def as_keystore_role(conn: asyncpg.Connection) -> None:
            if own_role:
                await conn.execute(f"SET ROLE {ROLE}")

        pool = await create_pool(
            settings.keystore_database_url or keys_database_url(settings.database_url),
            SCHEMA,
            max_size=settings.keystore_pool_size,
            init=as_keystore_role,
        )
        return cls(
            pool,
            kek,
            cache_size=settings.keystore_cache_size,
            cache_seconds=settings.keystore_cache_seconds,
        )

    async def close(self) -> None:
        await self._pool.close()

    async def _data_key(self, subject: str, *, create: bool) -> bytes:
        cached = self._cache.get(subject)
        if cached is not None and cached[1] > time.monotonic():
            self._cache.move_to_end(subject)
            return cached[0]
        row = await self._pool.fetchrow(
            "SELECT kek_version, wrapped_key FROM data_keys WHERE subject = $1", subject
        )
        if row is None and create:
            version, wrapped = self._kek.wrap(subject, AESGCM.generate_key(bit_length=256))
            await self._pool.execute(
                "INSERT INTO data_keys (subject, kek_version, wrapped_key) VALUES ($1, $2, $3)"
                " ON CONFLICT (subject) DO NOTHING",
                subject,
                version,
                wrapped,
            )
            # Whoever inserted first won; everyone uses that key.
            row = await self._pool.fetchrow(
                "SELECT kek_version, wrapped_key FROM data_keys WHERE subject = $1", subject
            )
        if row is None:
            raise KeyShredded(subject)
        key = self._kek.unwrap(subject, row["kek_version"], bytes(row["wrapped_key"]))
        if self._cache_size:
            self._cache[subject] = (key, time.monotonic() + self._cache_seconds)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return key

    async def token_key(self, name: str) -> bytes:
        """A key for keyed tokens (a trend window's), kept here with the data keys: wrapped
        by the KEK, and gone with `shred(name)` like any other. No service keeps such a
        key in its own tables. `name` is never a pseudonym (it carries a prefix)."""
        if ":" not in name:
            raise ValueError("a token key's name has a prefix, such as 'trend-window:'")
        data_key = await self._data_key(name, create=True)
        return HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"vroegsignaal token key v1"
        ).derive(data_key)

    async def seal(self, subject: str, aad: bytes, plaintext: bytes, *, create: bool) -> str:
        """Encrypt under the subject's data key (made when `create` and none exists)."""
        key = await self._data_key(subject, create=create)
        nonce = os.urandom(12)
        ciphertext = AESGCM(key).encrypt(nonce, plaintext, aad)
        return f"{SEAL_PREFIX}.{base64.b64encode(nonce + ciphertext).decode()}"

    async def open_sealed(self, subject: str, aad: bytes, sealed: str) -> bytes:
        """Decrypt, or raise KeyShredded (erased) or SealBroken (altered)."""
        prefix, _, body = sealed.partition(".")
        if prefix != SEAL_PREFIX:
            # Not the prefix itself: whatever stands there is the sender's text.
            raise SealBroken(f"not a sealed field of format {SEAL_PREFIX}")
        key = await self._data_key(subject, create=False)
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise SealBroken("the sealed field is not base64") from None
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], aad)
        except InvalidTag:
            raise SealBroken("the sealed field does not match its event") from None

    async def reshred(self, shreds: Sequence[tuple[str, datetime]]) -> list[str]:
        """Shred again what was shredded (`name`, when), after a restore brought keys back
        from a backup: each key made before its shredding goes; a key made after it (the
        subject registered anew since) stays. Returns the names shredded now."""
        again = []
        for name, at in shreds:
            self._cache.pop(name, None)
            if await self._pool.fetchval(
                "DELETE FROM data_keys WHERE subject = $1 AND created_at <= $2 RETURNING true",
                name,
                at,
            ):
                SHREDDED.inc()
                again.append(name)
        return again

    async def holds(self, subject: str) -> bool:
        """Whether the subject still has a data key (read fresh, never from the cache)."""
        return bool(
            await self._pool.fetchval("SELECT true FROM data_keys WHERE subject = $1", subject)
        )

    async def shred(self, subject: str) -> bool:
        """Delete the subject's data key; True when there was one."""
        self._cache.pop(subject, None)
        deleted = await self._pool.fetchval(
            "DELETE FROM data_keys WHERE subject = $1 RETURNING true", subject
        )
        if deleted:
            SHREDDED.inc()
        return bool(deleted)

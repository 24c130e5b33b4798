"""The desk's database (its own, at the partner): the registrations its workers made,
sealed, and each worker's use of the pseudonymiser per day."""

from __future__ import annotations

import hmac
import json
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.db import Conn

log = logging.getLogger("vroegsignaal.desk")
SCHEMA = "desk"
MIGRATIONS = sorted((Path(__file__).parent / "migrations").glob("*.sql"))
# Every sealed registration is this long: its size says nothing of how many parents or
# how long a reference it holds (the largest, every field at its longest in four-byte
# characters, is under 2 KiB: tests/unit/test_desk.py).
PADDED = 4096


class SealError(RuntimeError):
    """A stored registration does not open: another partner's key, or altered."""


class Sealing:
    """The partner's keys for the desk's records, both derived from its id key: one seals
    a registration (AES-256-GCM, bound to its id and partner), one names a worker."""

    def __init__(self, partner_id: str, id_key: bytes) -> None:
        self.partner_id = partner_id
        self._aead = AESGCM(_derive(id_key, b"vroegsignaal/desk/seal/v1"))
        self._worker_key = _derive(id_key, b"vroegsignaal/desk/worker/v1")

    def worker(self, worker_id: str) -> str:
        return hmac.new(self._worker_key, worker_id.encode(), "sha256").hexdigest()[:32]

    def seal(self, registration_id: uuid.UUID, worker: str, content: dict[str, Any]) -> bytes:
        plain = json.dumps(
            content, separators=(",", ":"), sort_keys=True, ensure_ascii=False
        ).encode()
        if len(plain) >= PADDED:
            raise ValueError(f"a registration is over {PADDED - 1} bytes")
        nonce = os.urandom(12)
        padded = plain + b"\x00" * (PADDED - len(plain))
        return nonce + self._aead.encrypt(nonce, padded, self._aad(registration_id, worker))

    def open(self, registration_id: uuid.UUID, worker: str, sealed: bytes) -> dict[str, Any]:
        """A record as sealed; SealError if it was altered, or moved to another id,
        worker or partner."""
        try:
            aad = self._aad(registration_id, worker)
            padded = self._aead.decrypt(sealed[:12], sealed[12:], aad)
        except InvalidTag:
            raise SealError(f"registration {registration_id} does not open") from None
        content: dict[str, Any] = json.loads(padded.rstrip(b"\x00"))
        return content

    def _aad(self, registration_id: uuid.UUID, worker: str) -> bytes:
        partner = self.partner_id.encode()
        return b"desk\x1f" + partner + b"\x1f" + worker.encode() + b"\x1f" + registration_id.bytes


def _derive(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


@dataclass(frozen=True)
class Stored:
    registration_id: uuid.UUID
    content: dict[str, Any]
    sent_at: datetime | None
    withdrawn_at: datetime | None
    withdrawn_reason: str | None


async def spend(
    conn: Conn, partner_id: str, worker: str, day: date, elements: int, limit: int
) -> bool:
    """Count `elements` against the worker's limit of `day`: False (nothing counted) when
    it would pass the limit."""
    used = await conn.fetchval(
        "INSERT INTO evaluations (partner_id, worker, day, elements)"
        " SELECT $1::text, $2::text, $3::date, $4::int WHERE $4::int <= $5::int"
        " ON CONFLICT (partner_id, worker, day) DO UPDATE"
        " SET elements = evaluations.elements + $4::int"
        " WHERE evaluations.elements + $4::int <= $5::int RETURNING elements",
        partner_id,
        worker,
        day,
        elements,
        limit,
    )
    return used is not None


async def add(
    conn: Conn, sealing: Sealing, worker: str, registration_id: uuid.UUID, content: dict[str, Any]
) -> Stored | None:
    """Keep a new registration (not yet sent); None when its id is taken (a form sent
    twice, or another worker's)."""
    done = await conn.fetchval(
        "INSERT INTO registrations (registration_id, partner_id, worker, sealed)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (registration_id) DO NOTHING RETURNING true",
        registration_id,
        sealing.partner_id,
        worker,
        sealing.seal(registration_id, worker, content),
    )
    if not done:
        return None
    return Stored(registration_id, content, None, None, None)


async def one(
    conn: Conn, sealing: Sealing, worker: str, registration_id: uuid.UUID
) -> Stored | None:
    row = await conn.fetchrow(
        "SELECT * FROM registrations"
        " WHERE registration_id = $1 AND partner_id = $2 AND worker = $3",
        registration_id,
        sealing.partner_id,
        worker,
    )
    return None if row is None else _stored(sealing, row)


async def of_worker(conn: Conn, sealing: Sealing, worker: str) -> list[Stored]:
    """The worker's registrations, newest first (one that does not open is left out)."""
    rows = await conn.fetch(
        "SELECT * FROM registrations WHERE partner_id = $1 AND worker = $2"
        " ORDER BY created_at DESC",
        sealing.partner_id,
        worker,
    )
    found = []
    for row in rows:
        try:
            found.append(_stored(sealing, row))
        except SealError:
            log.warning("a registration of the desk does not open: altered or moved")
    return found


async def unsent(
    conn: Conn, partners: list[str], older_than: timedelta
) -> list[tuple[str, str, uuid.UUID, bytes]]:
    """(partner id, worker, registration id, sealed) of what was kept for `partners` and
    not yet acknowledged by Kafka, oldest first: the desk's outbox."""
    rows = await conn.fetch(
        "SELECT partner_id, worker, registration_id, sealed FROM registrations"
        " WHERE sent_at IS NULL AND partner_id = ANY($1::text[])"
        " AND created_at < now() - $2::interval ORDER BY created_at LIMIT 100",
        partners,
        older_than,
    )
    return [(r["partner_id"], r["worker"], r["registration_id"], bytes(r["sealed"])) for r in rows]


async def sent(conn: Conn, registration_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE registrations SET sent_at = coalesce(sent_at, now()) WHERE registration_id = $1",
        registration_id,
    )


async def claim_withdrawal(conn: Conn, registration_id: uuid.UUID, reason: str) -> bool:
    """Mark a sent registration withdrawn, once: False if it was withdrawn before (or by
    a request at the same moment)."""
    done = await conn.fetchval(
        "UPDATE registrations SET withdrawn_at = now(), withdrawn_reason = $2"
        " WHERE registration_id = $1 AND withdrawn_at IS NULL AND sent_at IS NOT NULL"
        " RETURNING true",
        registration_id,
        reason,
    )
    return bool(done)


async def unclaim_withdrawal(conn: Conn, registration_id: uuid.UUID) -> None:
    """Undo a claim whose withdrawal could not be sent: the worker tries again."""
    await conn.execute(
        "UPDATE registrations SET withdrawn_at = NULL, withdrawn_reason = NULL"
        " WHERE registration_id = $1",
        registration_id,
    )


async def forget_before(conn: Conn, keep_days: int, now: datetime | None = None) -> int:
    """Drop the records (and counts) older than `keep_days`: past that, the registration
    has ended at the municipality and the desk has nothing to offer for it."""
    cut = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    gone = await conn.fetchval(
        "WITH gone AS (DELETE FROM registrations WHERE created_at < $1 RETURNING 1)"
        " SELECT count(*) FROM gone",
        cut,
    )
    await conn.execute("DELETE FROM evaluations WHERE day < $1", cut.date())
    return int(gone)


def _stored(sealing: Sealing, row: Any) -> Stored:
    return Stored(
        registration_id=row["registration_id"],
        content=sealing.open(row["registration_id"], row["worker"], bytes(row["sealed"])),
        sent_at=row["sent_at"],
        withdrawn_at=row["withdrawn_at"],
        withdrawn_reason=row["withdrawn_reason"],
    )

"""Intake's own schema: which signals were admitted or rejected (ids only)."""

from __future__ import annotations

import os
import uuid
from datetime import datetime

from shared.contracts import SignalAccepted
from shared.db import Conn


async def record_accepted(conn: Conn, accepted: SignalAccepted) -> None:
    await conn.execute(
        "INSERT INTO received_signals (signal_id, partner_id, accepted_at) VALUES ($1, $2, $3)",
        accepted.signal_id,
        accepted.partner_id,
        accepted.accepted_at,
    )


async def record_rejected(
    conn: Conn, signal_id: uuid.UUID, partner_id: str, reason_code: str
) -> None:
    await conn.execute(
        "INSERT INTO rejected_signals (signal_id, partner_id, reason_code) VALUES ($1, $2, $3)"
        " ON CONFLICT (signal_id) DO UPDATE SET reason_code = EXCLUDED.reason_code,"
        " rejected_at = now()",
        signal_id,
        partner_id,
        reason_code,
    )


async def counts(conn: Conn) -> dict[str, int]:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM received_signals) AS accepted,"
        " (SELECT count(*) FROM rejected_signals) AS rejected"
    )
    assert row is not None
    return {"accepted": row["accepted"], "rejected": row["rejected"]}


async def window_key(conn: Conn, window: str) -> bytes:
    """The key of a trend window, made on first use."""
    await conn.execute(
        "INSERT INTO trend_window_keys (window_id, key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        window,
        os.urandom(32),
    )
    key = await conn.fetchval("SELECT key FROM trend_window_keys WHERE window_id = $1", window)
    return bytes(key)


async def destroy_window_keys(conn: Conn, older_than: datetime) -> int:
    """Destroy the keys of closed windows: their tokens can never be linked again."""
    deleted = await conn.fetch(
        "DELETE FROM trend_window_keys WHERE created_at < $1 RETURNING window_id", older_than
    )
    return len(deleted)


async def was_accepted(conn: Conn, signal_id: uuid.UUID) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM received_signals WHERE signal_id = $1)", signal_id
        )
    )

"""Intake's own schema: which signals were admitted or rejected (ids only)."""

from __future__ import annotations

import uuid

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
        " ON CONFLICT DO NOTHING",
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

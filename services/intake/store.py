"""Intake's own schema: which signals were admitted or rejected (ids only)."""

from __future__ import annotations

import uuid
from datetime import datetime

from shared.contracts import SignalAccepted, WijkThemeObserved
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


async def hold_observation(conn: Conn, observation: WijkThemeObserved) -> None:
    await conn.execute(
        "INSERT INTO held_observations (observation_id, payload) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING",
        observation.event_id,
        observation.to_bytes(),
    )


async def take_held_observations(conn: Conn, limit: int) -> list[WijkThemeObserved]:
    """Up to `limit` held observations, removed (in the caller's transaction)."""
    rows = await conn.fetch(
        "DELETE FROM held_observations WHERE observation_id IN"
        " (SELECT observation_id FROM held_observations LIMIT $1 FOR UPDATE SKIP LOCKED)"
        " RETURNING payload",
        limit,
    )
    return [WijkThemeObserved.model_validate_json(bytes(r["payload"])) for r in rows]


def window_key_name(window: str) -> str:
    """The name of a trend window's key in the key store."""
    return f"trend-window:{window}"


async def remember_window(conn: Conn, window: str) -> None:
    """Note that `window` has a key in the key store (to destroy it when it has closed).
    The row stays locked until the caller commits: destroying the window waits for it."""
    await conn.execute(
        "INSERT INTO trend_windows (window_id) VALUES ($1)"
        " ON CONFLICT (window_id) DO UPDATE SET window_id = EXCLUDED.window_id",
        window,
    )


async def closed_windows(conn: Conn, older_than: datetime) -> list[str]:
    rows = await conn.fetch(
        "SELECT window_id FROM trend_windows WHERE created_at < $1 ORDER BY window_id",
        older_than,
    )
    return [r["window_id"] for r in rows]


async def forget_window(conn: Conn, window: str) -> None:
    await conn.execute("DELETE FROM trend_windows WHERE window_id = $1", window)


async def was_accepted(conn: Conn, signal_id: uuid.UUID) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM received_signals WHERE signal_id = $1)", signal_id
        )
    )

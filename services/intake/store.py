"""Intake's own schema: which signals were admitted or rejected (ids only)."""

from __future__ import annotations

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


async def hold_observation(conn: Conn, window: str, sealed: str) -> None:
    await conn.execute(
        "INSERT INTO pending_observations (observation_id, window_id, sealed) VALUES ($1, $2, $3)",
        uuid.uuid4(),
        window,
        sealed,
    )


async def take_observations(
    conn: Conn, at_least: int, held_before: datetime, limit: int
) -> list[tuple[uuid.UUID, str, str]]:
    """The held observations to count now, removed (in the caller's transaction): all of
    them, up to `limit`, when there are at least `at_least` or the oldest was held since
    before `held_before`; otherwise none, so that no count changes by one signal alone."""
    waiting = await conn.fetchrow(
        "SELECT count(*) AS n, min(held_at) AS oldest FROM pending_observations"
    )
    assert waiting is not None
    if waiting["n"] == 0 or (waiting["n"] < at_least and waiting["oldest"] >= held_before):
        return []
    rows = await conn.fetch(
        "DELETE FROM pending_observations WHERE observation_id IN"
        " (SELECT observation_id FROM pending_observations ORDER BY held_at LIMIT $1"
        "  FOR UPDATE SKIP LOCKED) RETURNING observation_id, window_id, sealed",
        limit,
    )
    return [(r["observation_id"], r["window_id"], r["sealed"]) for r in rows]


async def count_child(conn: Conn, cell: tuple[str, str, str], token: str) -> bool:
    """Count a child once in its wijk x theme week; False if it was counted before."""
    wijk, theme, window = cell
    added = await conn.fetchval(
        "INSERT INTO theme_tokens (wijk, theme, window_id, token) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING RETURNING true",
        wijk,
        theme,
        window,
        token,
    )
    if added:
        await conn.execute(
            "INSERT INTO theme_cells (wijk, theme, window_id, children) VALUES ($1, $2, $3, 1)"
            " ON CONFLICT (wijk, theme, window_id) DO UPDATE"
            " SET children = theme_cells.children + 1",
            wijk,
            theme,
            window,
        )
    return bool(added)


async def take_changed_cells(conn: Conn, k: int, limit: int) -> list[tuple[str, str, str, int]]:
    """Up to `limit` cells of at least k children whose count grew by at least k since it
    was last published, marked published (in the caller's transaction). Cells under k:
    never; and no published count differs from the one before by fewer than k children,
    so no difference of two counts singles out a child."""
    rows = await conn.fetch(
        "UPDATE theme_cells SET published = children WHERE (wijk, theme, window_id) IN"
        " (SELECT wijk, theme, window_id FROM theme_cells"
        "  WHERE children - published >= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"
        " RETURNING wijk, theme, window_id, children",
        k,
        limit,
    )
    return [(r["wijk"], r["theme"], r["window_id"], r["children"]) for r in rows]


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
    """The window has closed and its key is destroyed: its tokens are no longer needed
    (nor linkable); the counts stay."""
    await conn.execute("DELETE FROM theme_tokens WHERE window_id = $1", window)
    await conn.execute("DELETE FROM trend_windows WHERE window_id = $1", window)


async def was_accepted(conn: Conn, signal_id: uuid.UUID) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM received_signals WHERE signal_id = $1)", signal_id
        )
    )

"""Wijk trends (anonymous aggregates) as the inbox shows them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.db import Conn


async def add_trend_cell(
    conn: Conn, wijk: str, theme: str, window: str, children: int, trend: bool
) -> None:
    await conn.execute(
        "INSERT INTO wijk_trends (wijk, theme, window_id, distinct_children, trend)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (wijk, theme, window_id) DO UPDATE SET"
        # A week's count only grows; a trend event may arrive after a later count.
        " distinct_children = greatest(wijk_trends.distinct_children, EXCLUDED.distinct_children),"
        " trend = wijk_trends.trend OR EXCLUDED.trend",
        wijk,
        theme,
        window,
        children,
        trend,
    )


async def trend_cells(conn: Conn, wijken: Sequence[str]) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT wijk, theme, window_id, distinct_children, trend FROM wijk_trends"
        " WHERE wijk = ANY($1) ORDER BY wijk, theme, window_id",
        list(wijken),
    )
    return [
        {
            "wijk": r["wijk"],
            "theme": r["theme"],
            "window": r["window_id"],
            "children": r["distinct_children"],
            "trend": r["trend"],
        }
        for r in rows
    ]

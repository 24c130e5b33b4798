"""Intake's repository on PostgreSQL: which signals were admitted or rejected (ids only),
the held theme observations, the wijk x theme counts and the trend windows. The contract
it keeps is ports.IntakeRepository, the same as the in-memory one's."""

from __future__ import annotations

import uuid
from datetime import datetime

from services.intake.ports import CellCount, Held
from shared.contracts import SignalAccepted
from shared.db import Conn


class PostgresRepository:
    """Intake's repository on PostgreSQL, within the caller's transaction."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def record_accepted(self, accepted: SignalAccepted) -> None:
        await self.conn.execute(
            "INSERT INTO received_signals (signal_id, partner_id, accepted_at) VALUES ($1, $2, $3)",
            accepted.signal_id,
            accepted.partner_id,
            accepted.accepted_at,
        )

    async def record_rejected(
        self, signal_id: uuid.UUID, partner_id: str, reason_code: str, at: datetime
    ) -> None:
        await self.conn.execute(
            "INSERT INTO rejected_signals (signal_id, partner_id, reason_code, rejected_at)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (signal_id) DO UPDATE"
            " SET reason_code = EXCLUDED.reason_code, rejected_at = EXCLUDED.rejected_at",
            signal_id,
            partner_id,
            reason_code,
            at,
        )

    async def counts(self) -> dict[str, int]:
        row = await self.conn.fetchrow(
            "SELECT (SELECT count(*) FROM received_signals) AS accepted,"
            " (SELECT count(*) FROM rejected_signals) AS rejected"
        )
        assert row is not None
        return {"accepted": row["accepted"], "rejected": row["rejected"]}

    async def hold_observation(self, window: str, sealed: str, at: datetime) -> None:
        await self.conn.execute(
            "INSERT INTO pending_observations (observation_id, window_id, sealed, held_at)"
            " VALUES ($1, $2, $3, $4)",
            uuid.uuid4(),
            window,
            sealed,
            at,
        )

    async def take_observations(
        self, at_least: int, held_before: datetime, limit: int
    ) -> list[Held]:
        waiting = await self.conn.fetchrow(
            "SELECT count(*) AS n, min(held_at) AS oldest FROM pending_observations"
        )
        assert waiting is not None
        if waiting["n"] == 0 or (waiting["n"] < at_least and waiting["oldest"] >= held_before):
            return []
        rows = await self.conn.fetch(
            "DELETE FROM pending_observations WHERE observation_id IN"
            " (SELECT observation_id FROM pending_observations"
            "  ORDER BY held_at, observation_id LIMIT $1 FOR UPDATE SKIP LOCKED)"
            " RETURNING observation_id, window_id, sealed, held_at",
            limit,
        )
        ordered = sorted(rows, key=lambda r: (r["held_at"], r["observation_id"]))
        return [Held(r["observation_id"], r["window_id"], r["sealed"]) for r in ordered]

    async def count_child(self, cell: tuple[str, str, str], token: str) -> bool:
        wijk, theme, window = cell
        added = await self.conn.fetchval(
            "INSERT INTO theme_tokens (wijk, theme, window_id, token) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING RETURNING true",
            wijk,
            theme,
            window,
            token,
        )
        if added:
            await self.conn.execute(
                "INSERT INTO theme_cells (wijk, theme, window_id, children) VALUES ($1, $2, $3, 1)"
                " ON CONFLICT (wijk, theme, window_id) DO UPDATE"
                " SET children = theme_cells.children + 1",
                wijk,
                theme,
                window,
            )
        return bool(added)

    async def take_changed_cells(self, k: int, limit: int) -> list[CellCount]:
        rows = await self.conn.fetch(
            "UPDATE theme_cells SET published = children WHERE (wijk, theme, window_id) IN"
            " (SELECT wijk, theme, window_id FROM theme_cells"
            "  WHERE children - published >= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"
            " RETURNING wijk, theme, window_id, children",
            k,
            limit,
        )
        return [CellCount(r["wijk"], r["theme"], r["window_id"], r["children"]) for r in rows]

    async def remember_window(self, window: str, at: datetime) -> None:
        # The row stays locked until the caller commits: destroying the window waits.
        await self.conn.execute(
            "INSERT INTO trend_windows (window_id, created_at) VALUES ($1, $2)"
            " ON CONFLICT (window_id) DO UPDATE SET window_id = EXCLUDED.window_id",
            window,
            at,
        )

    async def closed_windows(self, older_than: datetime) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT window_id FROM trend_windows WHERE created_at < $1 ORDER BY window_id",
            older_than,
        )
        return [r["window_id"] for r in rows]

    async def forget_window(self, window: str) -> None:
        await self.conn.execute("DELETE FROM theme_tokens WHERE window_id = $1", window)
        await self.conn.execute("DELETE FROM trend_windows WHERE window_id = $1", window)

    async def was_accepted(self, signal_id: uuid.UUID) -> bool:
        return bool(
            await self.conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM received_signals WHERE signal_id = $1)", signal_id
            )
        )

"""Lifecycle events that arrive before their match: parked until it exists, or forgotten."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from shared.db import Conn, hashtext, lock


async def lock_match(conn: Conn, match_id: uuid.UUID) -> None:
    """Serialise every change to one match: its raise, joins, transfer and end, and an
    erasure, whichever topic and subscriber they come from."""
    await lock(conn, [f"match:{match_id}"], previously=hashtext)


async def park(
    conn: Conn, event_id: uuid.UUID, match_id: uuid.UUID, kind: str, payload: bytes
) -> None:
    await conn.execute(
        "INSERT INTO pending_lifecycle (event_id, match_id, event_type, payload)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        event_id,
        match_id,
        kind,
        payload,
    )


async def parked(conn: Conn, match_id: uuid.UUID) -> list[tuple[str, bytes]]:
    """The events that waited for this match, oldest first; taken off the waiting list."""
    rows = await conn.fetch(
        "DELETE FROM pending_lifecycle WHERE match_id = $1"
        " RETURNING event_type, payload, received_at",
        match_id,
    )
    return [
        (r["event_type"], bytes(r["payload"])) for r in sorted(rows, key=lambda r: r["received_at"])
    ]


async def forget_match_id(conn: Conn, match_id: uuid.UUID) -> None:
    """A match notification never held (its subject was erased first): later events of
    it change nothing."""
    await conn.execute(
        "INSERT INTO forgotten_matches (match_id) VALUES ($1) ON CONFLICT DO NOTHING", match_id
    )
    await conn.execute("DELETE FROM pending_lifecycle WHERE match_id = $1", match_id)


async def matches_of(conn: Conn, subject: str) -> list[uuid.UUID]:
    """The matches a subject is in: its person matches and its family matches."""
    rows = await conn.fetch(
        "SELECT match_id FROM matches WHERE subject = $1 UNION"
        " SELECT match_id FROM match_parties WHERE subject = $1 ORDER BY match_id",
        subject,
    )
    return [r["match_id"] for r in rows]


async def orphaned(conn: Conn, limit: int = 200) -> list[asyncpg.Record]:
    """Open matches of a team whose coordinator is gone (deactivated) or was never found."""
    return await conn.fetch(
        "SELECT m.match_id, m.kind, m.family, m.wijk, m.team_id, m.coordinator_id"
        " FROM matches m LEFT JOIN members c ON c.user_id = m.coordinator_id"
        " WHERE m.state = 'open' AND m.team_id IS NOT NULL"
        " AND (m.coordinator_id IS NULL OR NOT c.active)"
        " ORDER BY m.raised_at LIMIT $1",
        limit,
    )


async def drop_parties(conn: Conn, match_id: uuid.UUID, registrations: Sequence[uuid.UUID]) -> int:
    """Registrations that left a match: their workers are no longer party to it, and
    their open tasks go."""
    await conn.execute(
        "DELETE FROM inform_tasks WHERE match_id = $1 AND registration_id = ANY($2)"
        " AND done_at IS NULL",
        match_id,
        list(registrations),
    )
    status = await conn.execute(
        "DELETE FROM match_parties WHERE match_id = $1 AND registration_id = ANY($2)",
        match_id,
        list(registrations),
    )
    return int(status.split()[-1])

"""What is past its period: escalation, the overviews of team leads and the regie role."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.notification.domain import Overdue
from services.notification.store.matches import about_many
from shared.db import Conn


async def unacknowledged(conn: Conn, issued_before: datetime) -> list[asyncpg.Record]:
    """Alerts to workers of open matches, neither acknowledged nor escalated yet."""
    return await conn.fetch(
        "SELECT a.alert_id, a.match_id, a.kind, a.recipient, a.issued_at, a.subjects, m.team_id"
        " FROM alerts a JOIN matches m USING (match_id)"
        " WHERE a.acknowledged_at IS NULL AND a.escalated_at IS NULL"
        " AND a.part IN ('registrant', 'coordinator') AND m.state = 'open'"
        " AND a.issued_at < $1 ORDER BY a.issued_at LIMIT 500",
        issued_before,
    )


async def without_contact(conn: Conn, raised_before: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT match_id, kind, raised_at, coordinator_id FROM matches"
        " WHERE state = 'open' AND contact_made_at IS NULL AND escalated_at IS NULL"
        " AND raised_at < $1 ORDER BY raised_at LIMIT 500",
        raised_before,
    )


async def mark_alert_escalated(conn: Conn, alert_id: uuid.UUID, at: datetime) -> None:
    await conn.execute("UPDATE alerts SET escalated_at = $2 WHERE alert_id = $1", alert_id, at)


async def mark_match_escalated(conn: Conn, match_id: uuid.UUID, at: datetime) -> None:
    await conn.execute("UPDATE matches SET escalated_at = $2 WHERE match_id = $1", match_id, at)


async def queue_overdue(conn: Conn, items: Sequence[Overdue]) -> None:
    """Overdue items wait for their recipient's next digest e-mail (a count there)."""
    await conn.executemany(
        "INSERT INTO overdue_items (item_id, kind, recipient_id, target, match_id, alert_id)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        [
            (
                i.item_id,
                i.kind.value,
                i.recipient.worker_id,
                i.recipient.email,
                i.match_id,
                i.alert_id,
            )
            for i in items
        ],
    )


async def overdue_overview(
    conn: Conn, teams: Sequence[str] | None, limit: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[str]]:
    """What is past its period and still open: the alerts nobody acknowledged in time,
    with the worker who did not (of `teams`' matches; None: the regie role's, the
    matches of teams without a lead), and the matches without contact in time, with whom
    to chase (the coordinator; the workers when there is none; the regie role only).
    Also whom it discloses: each late alert's own children, each quiet match's."""
    # The regie role's: the teams without an active lead (domain.regie_oversees, in SQL;
    # a test holds the two to one answer).
    late = await conn.fetch(
        "SELECT a.alert_id, a.match_id, m.kind, m.team_id, a.part, a.recipient, a.issued_at,"
        " a.escalated_at, a.subjects FROM alerts a JOIN matches m USING (match_id)"
        " WHERE a.escalated_at IS NOT NULL AND a.acknowledged_at IS NULL AND m.state = 'open'"
        " AND CASE WHEN $1::text[] IS NULL THEN NOT EXISTS (SELECT 1 FROM members l"
        "  WHERE l.team_id = m.team_id AND l.role = 'team_lead' AND l.active)"
        "  ELSE m.team_id = ANY($1) END"
        " ORDER BY a.escalated_at DESC, a.alert_id LIMIT $2",
        None if teams is None else list(teams),
        limit,
    )
    quiet = (
        []
        if teams is not None
        else await conn.fetch(
            "SELECT m.match_id, m.kind, m.team_id, m.raised_at, m.escalated_at,"
            " coalesce((SELECT jsonb_agg(jsonb_build_object('worker_id', c.user_id,"
            "   'display_name', c.name, 'email', c.email, 'phone', c.phone))"
            "  FROM members c WHERE c.user_id = m.coordinator_id),"
            "  (SELECT jsonb_agg(DISTINCT p.worker) FROM match_parties p"
            "   WHERE p.match_id = m.match_id), '[]') AS chase"
            " FROM matches m WHERE m.escalated_at IS NOT NULL AND m.contact_made_at IS NULL"
            " AND m.state = 'open' ORDER BY m.escalated_at DESC, m.match_id LIMIT $1",
            limit,
        )
    )
    disclosed = {s for r in late for s in r["subjects"]}
    disclosed.update(await about_many(conn, [r["match_id"] for r in quiet]))
    return (
        [
            {
                "alert_id": str(r["alert_id"]),
                "match_id": str(r["match_id"]),
                "kind": r["kind"],
                "team": r["team_id"],
                "part": r["part"],
                "worker": json.loads(r["recipient"]),
                "issued_at": r["issued_at"].isoformat(),
                "escalated_at": r["escalated_at"].isoformat(),
            }
            for r in late
        ],
        [
            {
                "match_id": str(r["match_id"]),
                "kind": r["kind"],
                "team": r["team_id"],
                "raised_at": r["raised_at"].isoformat(),
                "escalated_at": r["escalated_at"].isoformat(),
                "chase": json.loads(r["chase"]),
            }
            for r in quiet
        ],
        disclosed,
    )


async def regie_overview(conn: Conn, limit: int) -> list[dict[str, Any]]:
    """Per match: whether contact happened. Nothing more (rule 11)."""
    rows = await conn.fetch(
        "SELECT match_id, kind, wijk, team_id, state, raised_at, contact_made_at IS NOT NULL"
        " AS contact_made, coordinator_id IS NOT NULL AS coordinated FROM matches"
        " ORDER BY raised_at DESC LIMIT $1",
        limit,
    )
    return [
        {
            "match_id": str(r["match_id"]),
            "kind": r["kind"],
            "wijk": r["wijk"],
            "team": r["team_id"],
            "state": r["state"],
            "raised_at": r["raised_at"].isoformat(),
            "contact_made": r["contact_made"],
            "coordinated": r["coordinated"],
        }
        for r in rows
    ]

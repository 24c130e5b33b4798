"""Audit's own schema: the append-only entries table."""

from __future__ import annotations

from typing import Any

from services.audit.domain import AuditEntry
from shared.db import Conn


async def append(conn: Conn, entry: AuditEntry) -> None:
    e = entry.event
    await conn.execute(
        "INSERT INTO entries (event_id, occurred_at, recorded_at, action, outcome, actor_id,"
        " actor_role, on_behalf_of, subjects, object_type, object_id, source_system,"
        " source_instance, purpose, trace_id, canonical)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        e.event_id,
        e.occurred_at,
        entry.recorded_at,
        e.action.value,
        e.outcome.value,
        e.actor.actor_id,
        e.actor.role,
        e.on_behalf_of,
        list(e.subjects),
        e.object_type,
        e.object_id,
        e.source_system,
        e.source_instance,
        e.purpose,
        e.trace_id,
        entry.canonical,
    )


async def summary(conn: Conn) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT source_system, action, outcome, count(*) AS entries FROM entries"
        " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    return [dict(r) for r in rows]

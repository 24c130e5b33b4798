"""Notification's own schema: the alerts, one per (match, recipient, kind)."""

from __future__ import annotations

import json
from typing import Any

from services.notification.domain import Alert
from shared.db import Conn


async def add_alert(conn: Conn, alert: Alert) -> bool:
    row = await conn.fetchrow(
        "INSERT INTO alerts (alert_id, match_id, kind, recipient_id, recipient, contacts)"
        " VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb)"
        " ON CONFLICT DO NOTHING RETURNING alert_id",
        alert.alert_id,
        alert.match_id,
        alert.kind.value,
        alert.recipient.worker_id,
        alert.recipient.model_dump_json(),
        json.dumps([c.model_dump(mode="json") for c in alert.contacts]),
    )
    return row is not None


async def alerts_of(conn: Conn, worker_id: str, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT alert_id, match_id, kind, contacts, issued_at FROM alerts"
        " WHERE recipient_id = $1 ORDER BY issued_at DESC LIMIT $2",
        worker_id,
        limit,
    )
    return [
        {
            "alert_id": str(r["alert_id"]),
            "match_id": str(r["match_id"]),
            "kind": r["kind"],
            "contacts": json.loads(r["contacts"]),
            "issued_at": r["issued_at"].isoformat(),
        }
        for r in rows
    ]


async def counts(conn: Conn) -> dict[str, int]:
    row = await conn.fetchrow(
        "SELECT count(*) AS alerts, count(DISTINCT recipient_id) AS recipients FROM alerts"
    )
    assert row is not None
    return {"alerts": row["alerts"], "recipients": row["recipients"]}

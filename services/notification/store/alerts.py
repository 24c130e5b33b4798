"""Alerts and the cases they make up: storing, listing, reading, acknowledging."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.notification.domain import Alert, message_key
from shared.contracts import WorkerContact
from shared.db import Conn

# Every instance's inbox streams LISTEN here; the payload is only the recipient's id.
ALERT_CHANNEL = "vs_alerts"


def _contacts(workers: Sequence[WorkerContact]) -> str:
    return json.dumps([w.model_dump(mode="json") for w in workers])


async def add_alert(
    conn: Conn, alert: Alert, subjects: Sequence[str], organisation: str | None = None
) -> bool:
    """Store an alert once; the inbox streams hear of it when the transaction commits.
    `organisation`: a registering worker's, whose token must name it to read the alert."""
    row = await conn.fetchrow(
        "INSERT INTO alerts (alert_id, match_id, kind, recipient_id, recipient, contacts,"
        " occasion, part, subjects, message, coordinator, recipient_organisation)"
        " VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9, $10, $11::jsonb, $12)"
        " ON CONFLICT DO NOTHING RETURNING alert_id",
        alert.alert_id,
        alert.match_id,
        alert.kind.value,
        alert.recipient.worker_id,
        alert.recipient.model_dump_json(),
        _contacts(alert.contacts),
        alert.occasion,
        alert.part.value,
        list(subjects),
        alert.message,
        alert.coordinator.model_dump_json() if alert.coordinator else None,
        organisation,
    )
    if row is not None:
        await tell_live(conn, alert.recipient.worker_id)
    return row is not None


async def tell_live(conn: Conn, recipient_id: str) -> None:
    """The recipient's open pages reload what changed (at commit)."""
    await conn.execute("SELECT pg_notify($1, $2)", ALERT_CHANNEL, recipient_id)


def _keyed(field: str, message: str) -> dict[str, Any]:
    """`<field>_key` and `<field>_params`: the message's text in the page's language."""
    found = message_key(message)
    return {f"{field}_key": found[0], f"{field}_params": found[1]} if found else {}


def _alert_json(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "alert_id": str(r["alert_id"]),
        "match_id": str(r["match_id"]) if r["match_id"] else None,
        "kind": r["kind"],
        "occasion": r["occasion"].split(":", 1)[0],
        "part": r["part"],
        "message": r["message"],
        **_keyed("message", r["message"]),
        "contacts": json.loads(r["contacts"]),
        "coordinator": json.loads(r["coordinator"]) if r["coordinator"] else None,
        "issued_at": r["issued_at"].isoformat(),
        "acknowledged_at": r["acknowledged_at"].isoformat() if r["acknowledged_at"] else None,
    }


_ALERT_COLUMNS = (
    "alert_id, match_id, kind, occasion, part, message, contacts, coordinator, issued_at,"
    " acknowledged_at"
)


MINE = "recipient_id = $1 AND (recipient_organisation IS NULL OR recipient_organisation = $2)"


async def alerts_of(
    conn: Conn,
    recipient_id: str,
    organisation: str | None,
    limit: int,
    *,
    notices_only: bool = False,
) -> tuple[list[dict[str, Any]], list[str]]:
    """A recipient's newest alerts (a registering worker's only at their organisation),
    and the subject pseudonyms they are about; `notices_only`: those without a case."""
    rows = await conn.fetch(
        f"SELECT {_ALERT_COLUMNS}, subjects FROM alerts WHERE {MINE}"
        + (" AND match_id IS NULL" if notices_only else "")
        + " ORDER BY issued_at DESC, alert_id LIMIT $3",
        recipient_id,
        organisation,
        limit,
    )
    return [_alert_json(r) for r in rows], sorted({s for r in rows for s in r["subjects"]})


# "waiting" is domain.waiting_for_recipient, in SQL (a test holds the two to one answer).
CASE_FILTERS = {
    "open": "m.state = 'open'",
    "waiting": "(c.unread > 0 OR c.open_tasks > 0)",
    "closed": "m.state <> 'open'",
    "all": "true",
}


_CASES = (
    "WITH c AS (SELECT a.match_id, count(*) AS alerts,"
    "  count(*) FILTER (WHERE a.acknowledged_at IS NULL) AS unread,"
    "  max(a.issued_at) AS latest,"
    "  (array_agg(a.message ORDER BY a.issued_at DESC, a.alert_id))[1] AS latest_message,"
    "  (array_agg(split_part(a.occasion, ':', 1) ORDER BY a.issued_at DESC, a.alert_id))[1]"
    "   AS latest_occasion,"
    "  (SELECT count(*) FROM inform_tasks t WHERE t.match_id = a.match_id"
    "   AND t.worker_id = $1 AND t.done_at IS NULL) AS open_tasks"
    " FROM alerts a WHERE a.match_id IS NOT NULL AND a.recipient_id = $1"
    "  AND (a.recipient_organisation IS NULL OR a.recipient_organisation = $2)"
    " GROUP BY a.match_id)"
)


async def cases_of(
    conn: Conn, recipient_id: str, organisation: str | None, which: str, limit: int, offset: int
) -> tuple[list[dict[str, Any]], dict[str, int], list[str]]:
    """A recipient's cases (the matches they were told of), newest change first: each
    with its state, latest change, unread alerts, whether contact was made and their open
    tasks; how many cases each filter holds; and the subjects the page discloses."""
    rows = await conn.fetch(
        f"{_CASES} SELECT m.match_id, m.kind, m.state, m.raised_at, m.closed_at,"
        " m.contact_made_at, c.alerts, c.unread, c.latest, c.latest_message,"
        " c.latest_occasion, c.open_tasks FROM c JOIN matches m USING (match_id)"
        f" WHERE {CASE_FILTERS[which]} ORDER BY c.latest DESC, m.match_id LIMIT $3 OFFSET $4",
        recipient_id,
        organisation,
        limit,
        offset,
    )
    counted = ", ".join(f"count(*) FILTER (WHERE {w}) AS {n}" for n, w in CASE_FILTERS.items())
    totals = await conn.fetchrow(
        f"{_CASES} SELECT {counted} FROM c JOIN matches m USING (match_id)",
        recipient_id,
        organisation,
    )
    assert totals is not None
    subjects = await subjects_told(conn, recipient_id, organisation, [r["match_id"] for r in rows])
    return (
        [
            {
                "match_id": str(r["match_id"]),
                "kind": r["kind"],
                "state": r["state"],
                "raised_at": r["raised_at"].isoformat(),
                "closed_at": r["closed_at"].isoformat() if r["closed_at"] else None,
                "contact_made": r["contact_made_at"] is not None,
                "alerts": r["alerts"],
                "unread": r["unread"],
                "latest_at": r["latest"].isoformat(),
                "latest": r["latest_message"],
                **_keyed("latest", r["latest_message"]),
                "latest_occasion": r["latest_occasion"],
                "open_tasks": r["open_tasks"],
            }
            for r in rows
        ],
        dict(totals),
        subjects,
    )


async def subjects_told(
    conn: Conn, recipient_id: str, organisation: str | None, match_ids: Sequence[uuid.UUID]
) -> list[str]:
    """The children a recipient's own alerts in these matches are about: what a list or
    timeline of them discloses (a registering worker's, their own registrations' only)."""
    rows = await conn.fetch(
        f"SELECT DISTINCT unnest(subjects) AS subject FROM alerts WHERE {MINE}"
        " AND match_id = ANY($3::uuid[]) ORDER BY subject",
        recipient_id,
        organisation,
        list(match_ids),
    )
    return [r["subject"] for r in rows]


async def case_timeline(
    conn: Conn, match_id: uuid.UUID, recipient_id: str, organisation: str | None
) -> list[dict[str, Any]]:
    """What a recipient was told about one case, oldest first (empty: not their case)."""
    rows = await conn.fetch(
        f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE {MINE} AND match_id = $3"
        " ORDER BY issued_at, alert_id",
        recipient_id,
        organisation,
        match_id,
    )
    return [_alert_json(r) for r in rows]


async def acknowledge_case(
    conn: Conn, match_id: uuid.UUID, recipient_id: str, organisation: str | None, at: datetime
) -> int:
    """Acknowledge every unread alert of a recipient's case; how many."""
    done = await conn.fetch(
        f"UPDATE alerts SET acknowledged_at = $4 WHERE {MINE} AND match_id = $3"
        " AND acknowledged_at IS NULL RETURNING alert_id",
        recipient_id,
        organisation,
        match_id,
        at,
    )
    return len(done)


async def owned_alert(
    conn: Conn, alert_id: uuid.UUID, recipient_id: str, organisation: str | None
) -> tuple[bool, list[str]]:
    """(whether the alert is this recipient's, the subjects it is about)."""
    row = await conn.fetchrow(
        f"SELECT subjects FROM alerts WHERE alert_id = $3 AND {MINE}",
        recipient_id,
        organisation,
        alert_id,
    )
    return (row is not None, list(row["subjects"]) if row else [])


async def acknowledge(conn: Conn, alert_id: uuid.UUID, at: datetime) -> bool:
    return bool(
        await conn.fetchval(
            "UPDATE alerts SET acknowledged_at = $2 WHERE alert_id = $1"
            " AND acknowledged_at IS NULL RETURNING true",
            alert_id,
            at,
        )
    )


async def counts(conn: Conn) -> dict[str, int]:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM alerts) AS alerts,"
        " (SELECT count(DISTINCT recipient_id) FROM alerts) AS recipients,"
        " (SELECT count(*) FROM matches WHERE state = 'open') AS open_matches,"
        " (SELECT count(*) FROM deliveries WHERE state = 'pending') AS deliveries_pending,"
        " (SELECT count(*) FROM deliveries WHERE state = 'dead') AS deliveries_dead"
    )
    assert row is not None
    return dict(row)

"""Erasure and retention: what goes when a subject is erased or a match has ended long enough."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from shared.db import Conn


async def forget_subject(
    conn: Conn, subject: str, registrations: Sequence[uuid.UUID]
) -> tuple[int, int]:
    """Erase what notification holds about a subject: its person matches (parties,
    contacts made, tasks, alerts), its notices, its registrations' places and tasks in
    family matches that go on for its siblings, and its pseudonym wherever it is left.
    Returns (matches, alerts) removed; the match ids are remembered so late events
    change nothing."""
    match_ids = [
        r["match_id"]
        for r in await conn.fetch(
            "SELECT match_id FROM matches WHERE subject = $1 AND kind = 'person'", subject
        )
    ]
    alerts = await forget_matches(conn, match_ids)
    alerts += await conn.fetchval(
        "WITH gone AS (DELETE FROM alerts WHERE $1 = ANY(subjects) AND match_id IS NULL"
        " RETURNING 1) SELECT count(*) FROM gone",
        subject,
    )
    # Family matches go on for the siblings, without this child: its registrations'
    # places and tasks, the alerts about it alone (to the workers who registered it), its
    # workers wherever they were named only for it, and its pseudonym everywhere.
    places = await conn.fetch(
        "SELECT match_id, registration_id, worker_id FROM match_parties"
        " WHERE subject = $1 OR registration_id = ANY($2)",
        subject,
        list(registrations),
    )
    gone = [*registrations, *(r["registration_id"] for r in places)]
    for table in ("inform_tasks", "match_parties"):
        await conn.execute(f"DELETE FROM {table} WHERE registration_id = ANY($1)", gone)
    # Whom it told about this child alone: the child's own workers (also when their
    # places went before this, with the match's MatchLeft).
    told = await conn.fetch(
        "DELETE FROM alerts WHERE subjects = ARRAY[$1]::text[]"
        " RETURNING match_id, recipient_id, part",
        subject,
    )
    alerts += len(told)
    await conn.execute(
        "UPDATE alerts SET subjects = array_remove(subjects, $1) WHERE $1 = ANY(subjects)",
        subject,
    )
    workers: dict[uuid.UUID, set[str]] = {}
    for r in places:
        workers.setdefault(r["match_id"], set()).add(r["worker_id"])
    for r in told:
        if r["match_id"] is not None and r["part"] == "registrant":
            workers.setdefault(r["match_id"], set()).add(r["recipient_id"])
    for match_id, of_match in workers.items():
        await forget_workers_not_party(conn, match_id, of_match)
    await conn.execute("UPDATE matches SET subject = NULL WHERE subject = $1", subject)
    return len(match_ids), int(alerts)


async def forget_workers_not_party(conn: Conn, match_id: uuid.UUID, workers: set[str]) -> None:
    """Workers of `workers` who are no longer party to the match (their registrations went)
    are named nowhere in it any more: not among the contacts of its alerts, nor in the
    contacts made."""
    still = {
        r["worker_id"]
        for r in await conn.fetch(
            "SELECT worker_id FROM match_parties WHERE match_id = $1 AND worker_id = ANY($2)",
            match_id,
            sorted(workers),
        )
    }
    leaving = sorted(workers - still)
    if not leaving:
        return
    await conn.execute(
        "UPDATE alerts SET contacts = (SELECT coalesce(jsonb_agg(c), '[]'::jsonb)"
        "  FROM jsonb_array_elements(contacts) AS c WHERE NOT c->>'worker_id' = ANY($2))"
        " WHERE match_id = $1",
        match_id,
        leaving,
    )
    await conn.execute(
        "DELETE FROM contacts_made WHERE match_id = $1"
        " AND (worker_id = ANY($2) OR with_worker = ANY($2))",
        match_id,
        leaving,
    )


async def forget_matches(conn: Conn, match_ids: Sequence[uuid.UUID]) -> int:
    """Remove matches with their alerts (and deliveries), parties, contacts and tasks;
    remember their ids. Returns the number of alerts removed."""
    await conn.executemany(
        "INSERT INTO forgotten_matches (match_id) VALUES ($1) ON CONFLICT DO NOTHING",
        [(m,) for m in match_ids],
    )
    alerts = await conn.fetchval(
        "WITH gone AS (DELETE FROM alerts WHERE match_id = ANY($1) RETURNING 1)"
        " SELECT count(*) FROM gone",
        list(match_ids),
    )
    for table in ("inform_tasks", "contacts_made", "match_parties", "matches"):
        await conn.execute(f"DELETE FROM {table} WHERE match_id = ANY($1)", list(match_ids))
    return int(alerts)


async def expired(conn: Conn, closed_before: datetime) -> tuple[list[uuid.UUID], int]:
    """Matches closed before the cutoff, and how many notices without a match (earlier
    involvement) were issued before it, for the retention job."""
    rows = await conn.fetch(
        "SELECT match_id FROM matches WHERE state = 'closed' AND closed_at < $1 LIMIT 1000",
        closed_before,
    )
    notices = await conn.fetchval(
        "WITH gone AS (DELETE FROM alerts WHERE match_id IS NULL AND issued_at < $1"
        " RETURNING 1) SELECT count(*) FROM gone",
        closed_before,
    )
    return [r["match_id"] for r in rows], int(notices)


async def forgotten(conn: Conn, match_id: uuid.UUID) -> bool:
    return bool(
        await conn.fetchval("SELECT true FROM forgotten_matches WHERE match_id = $1", match_id)
    )

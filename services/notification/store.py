"""Notification's own schema: matches as far as notification needs them, alerts (one per
(match, recipient, kind, occasion)), follow-up, deliveries and anonymous wijk counts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.notification.domain import About, Alert, Overdue, TeamWorker, message_key
from shared.contracts import MatchContact, OrganisationCategory, WorkerContact
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


# --- matches -----------------------------------------------------------------------


async def add_match(
    conn: Conn,
    *,
    match_id: uuid.UUID,
    kind: str,
    subject: str | None,
    family: str | None,
    wijk: str,
    team_id: str | None,
    coordinator_id: str | None,
    raised_at: datetime,
) -> bool:
    row = await conn.fetchrow(
        "INSERT INTO matches (match_id, kind, subject, family, wijk, team_id, coordinator_id,"
        " raised_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT DO NOTHING RETURNING match_id",
        match_id,
        kind,
        subject,
        family,
        wijk,
        team_id,
        coordinator_id,
        raised_at,
    )
    return row is not None


async def add_parties(
    conn: Conn,
    match_id: uuid.UUID,
    contacts: Sequence[MatchContact],
    yours: Mapping[uuid.UUID, str] | None = None,
) -> None:
    """The parties of a match; `yours`: per registration, what its own organisation is
    shown of it (sealed)."""
    await conn.executemany(
        "INSERT INTO match_parties (match_id, registration_id, worker_id, worker, organisation,"
        " subject, yours) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7)"
        # A party stored before its organisation's view existed gets it from a later
        # event; one already there stays as it is.
        " ON CONFLICT (match_id, registration_id)"
        " DO UPDATE SET yours = coalesce(match_parties.yours, excluded.yours)",
        [
            (
                match_id,
                c.registration_id,
                c.worker.worker_id,
                c.worker.model_dump_json(),
                c.organisation,
                c.subject,
                (yours or {}).get(c.registration_id),
            )
            for c in contacts
        ],
    )


async def yours_in(
    conn: Conn, match_ids: Sequence[uuid.UUID], worker_id: str, organisation: str | None
) -> list[asyncpg.Record]:
    """The sealed own registrations of a worker (at their organisation) in these matches."""
    if organisation is None:
        return []
    return await conn.fetch(
        "SELECT match_id, registration_id, subject, yours FROM match_parties"
        " WHERE match_id = ANY($1::uuid[]) AND worker_id = $2 AND organisation = $3"
        " AND yours IS NOT NULL AND subject IS NOT NULL",
        list(match_ids),
        worker_id,
        organisation,
    )


async def about(conn: Conn, match_id: uuid.UUID) -> About:
    """Whose data the match's alerts and reads disclose (see About)."""
    rows = await conn.fetch(
        "SELECT worker_id, subject FROM match_parties WHERE match_id = $1", match_id
    )
    return About.of_parties((r["worker_id"], r["subject"]) for r in rows)


async def about_many(conn: Conn, match_ids: Sequence[uuid.UUID]) -> list[str]:
    """The children of these matches (a list or overview that shows them)."""
    rows = await conn.fetch(
        "SELECT DISTINCT subject FROM match_parties WHERE match_id = ANY($1)"
        " AND subject IS NOT NULL ORDER BY subject",
        list(match_ids),
    )
    return [r["subject"] for r in rows]


async def match(conn: Conn, match_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT match_id, kind, subject, family, wijk, team_id, coordinator_id, state,"
        " raised_at, closed_at, contact_made_at FROM matches WHERE match_id = $1",
        match_id,
    )


async def parties(conn: Conn, match_id: uuid.UUID) -> list[tuple[WorkerContact, str]]:
    """The distinct workers of a match and their organisation."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (worker_id) worker, organisation FROM match_parties"
        " WHERE match_id = $1 ORDER BY worker_id",
        match_id,
    )
    return [(WorkerContact.model_validate_json(r["worker"]), r["organisation"]) for r in rows]


async def is_party(conn: Conn, match_id: uuid.UUID, user_id: str, organisation: str | None) -> bool:
    """A registering worker (at their organisation) or the coordinator of the match."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM match_parties WHERE match_id = $1 AND worker_id = $2"
            "  AND organisation = $3)"
            " OR EXISTS (SELECT 1 FROM matches WHERE match_id = $1 AND coordinator_id = $2)",
            match_id,
            user_id,
            organisation,
        )
    )


async def has_party(conn: Conn, match_id: uuid.UUID, worker_id: str) -> bool:
    """Whether someone is a party (any organisation) or the coordinator: for whom a party
    may record contact."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM match_parties WHERE match_id = $1 AND worker_id = $2)"
            " OR EXISTS (SELECT 1 FROM matches WHERE match_id = $1 AND coordinator_id = $2)",
            match_id,
            worker_id,
        )
    )


async def family_coordinator(conn: Conn, family: str | None) -> str | None:
    if family is None:
        return None
    found: str | None = await conn.fetchval(
        "SELECT coordinator_id FROM matches WHERE family = $1 AND state = 'open'"
        " AND coordinator_id IS NOT NULL ORDER BY raised_at LIMIT 1",
        family,
    )
    return found


async def team_workers(conn: Conn, team_id: str) -> list[TeamWorker]:
    rows = await conn.fetch(
        "SELECT m.user_id, m.category, m.active,"
        " (SELECT count(*) FROM matches x WHERE x.coordinator_id = m.user_id"
        "  AND x.state = 'open') AS open_matches"
        " FROM members m WHERE m.team_id = $1 AND m.role = 'worker'",
        team_id,
    )
    return [
        TeamWorker(
            r["user_id"], OrganisationCategory(r["category"]), r["active"], r["open_matches"]
        )
        for r in rows
    ]


async def member(conn: Conn, user_id: str) -> TeamWorker | None:
    row = await conn.fetchrow(
        "SELECT user_id, category, active FROM members WHERE user_id = $1", user_id
    )
    if row is None:
        return None
    return TeamWorker(row["user_id"], OrganisationCategory(row["category"]), row["active"], 0)


async def lock_assignment(conn: Conn, team_id: str) -> None:
    """Serialise coordinator choices per team, so two matches never both pick the same
    'least loaded' worker from a stale count."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"assign:{team_id}")


async def reassign(
    conn: Conn, match_id: uuid.UUID, *, wijk: str, team_id: str | None, coordinator_id: str | None
) -> None:
    await conn.execute(
        "UPDATE matches SET wijk = $2, team_id = $3, coordinator_id = $4 WHERE match_id = $1",
        match_id,
        wijk,
        team_id,
        coordinator_id,
    )


async def close_match(conn: Conn, match_id: uuid.UUID, at: datetime) -> bool:
    return bool(
        await conn.fetchval(
            "UPDATE matches SET state = 'closed', closed_at = $2 WHERE match_id = $1"
            " AND state = 'open' RETURNING true",
            match_id,
            at,
        )
    )


async def record_contact(
    conn: Conn, match_id: uuid.UUID, worker_id: str, with_worker: str, at: datetime
) -> bool:
    row = await conn.fetchrow(
        "INSERT INTO contacts_made (match_id, worker_id, with_worker, recorded_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
        match_id,
        worker_id,
        with_worker,
        at,
    )
    await conn.execute(
        "UPDATE matches SET contact_made_at = coalesce(contact_made_at, $2) WHERE match_id = $1",
        match_id,
        at,
    )
    return row is not None


async def contacts_made(conn: Conn, match_id: uuid.UUID) -> list[dict[str, str]]:
    rows = await conn.fetch(
        "SELECT worker_id, with_worker, recorded_at FROM contacts_made WHERE match_id = $1"
        " ORDER BY recorded_at",
        match_id,
    )
    return [
        {
            "worker_id": r["worker_id"],
            "with_worker": r["with_worker"],
            "recorded_at": r["recorded_at"].isoformat(),
        }
        for r in rows
    ]


# --- informing the family ----------------------------------------------------------


async def add_task(
    conn: Conn,
    *,
    match_id: uuid.UUID,
    registration_id: uuid.UUID,
    worker_id: str,
    addressee: str,
) -> bool:
    task_id = uuid.uuid5(match_id, f"inform/{registration_id}")
    row = await conn.fetchrow(
        "INSERT INTO inform_tasks (task_id, match_id, registration_id, worker_id, addressee)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
        task_id,
        match_id,
        registration_id,
        worker_id,
        addressee,
    )
    return row is not None


_OWN_TASK = (
    "FROM inform_tasks t JOIN matches m USING (match_id) JOIN match_parties p"
    " ON p.match_id = t.match_id AND p.registration_id = t.registration_id"
    " WHERE t.worker_id = $1 AND p.organisation = $2"
)


async def tasks_of(conn: Conn, worker_id: str, organisation: str | None) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT t.task_id, t.match_id, t.addressee, t.created_at, t.done_at, m.kind, p.subject,"
        " p.registration_id, p.yours "
        f"{_OWN_TASK} ORDER BY t.done_at NULLS FIRST, t.created_at DESC LIMIT 200",
        worker_id,
        organisation,
    )
    return [
        {
            "task_id": str(r["task_id"]),
            "match_id": str(r["match_id"]),
            "kind": r["kind"],
            "addressee": r["addressee"],
            "created_at": r["created_at"].isoformat(),
            "done_at": r["done_at"].isoformat() if r["done_at"] else None,
            "subject": r["subject"],
            "registration_id": r["registration_id"],
            "yours": r["yours"],
        }
        for r in rows
    ]


async def task_subjects(conn: Conn, task_id: uuid.UUID) -> list[str]:
    """The child a task to inform is about (its registration's)."""
    rows = await conn.fetch(
        "SELECT p.subject FROM inform_tasks t JOIN match_parties p"
        " ON p.match_id = t.match_id AND p.registration_id = t.registration_id"
        " WHERE t.task_id = $1 AND p.subject IS NOT NULL",
        task_id,
    )
    return [r["subject"] for r in rows]


async def own_task(
    conn: Conn, task_id: uuid.UUID, worker_id: str, organisation: str | None
) -> uuid.UUID | None:
    """The match of one of this worker's tasks (at their organisation), else None."""
    found: uuid.UUID | None = await conn.fetchval(
        f"SELECT t.match_id {_OWN_TASK} AND t.task_id = $3", worker_id, organisation, task_id
    )
    return found


async def complete_task(conn: Conn, task_id: uuid.UUID, at: datetime) -> bool:
    return bool(
        await conn.fetchval(
            "UPDATE inform_tasks SET done_at = $2 WHERE task_id = $1 AND done_at IS NULL"
            " RETURNING true",
            task_id,
            at,
        )
    )


# --- escalation --------------------------------------------------------------------


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


# --- deliveries --------------------------------------------------------------------


async def add_delivery(conn: Conn, alert_id: uuid.UUID, channel: str, target: str) -> None:
    await conn.execute(
        "INSERT INTO deliveries (delivery_id, alert_id, channel, target)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        uuid.uuid5(alert_id, f"{channel}/{target}"),
        alert_id,
        channel,
        target,
    )


async def queue_for_digest(conn: Conn, alert: Alert) -> None:
    """An alert waits for its recipient's next digest e-mail; whether it is the first the
    recipient hears of its case decides how soon that is (the policy's new-case rule)."""
    await conn.execute(
        "INSERT INTO digest_items (alert_id, recipient_id, target, match_id, new_case)"
        " SELECT $1, $2, $3, $4::uuid, $4::uuid IS NOT NULL AND NOT EXISTS ("
        "  SELECT 1 FROM alerts WHERE match_id = $4::uuid AND recipient_id = $2"
        "  AND alert_id <> $1)"
        " ON CONFLICT DO NOTHING",
        alert.alert_id,
        alert.recipient.worker_id,
        alert.recipient.email,
        alert.match_id,
    )


async def waiting_digests(conn: Conn) -> list[asyncpg.Record]:
    """Per recipient (and address) with alerts waiting: whether one of them opens a case
    new to them, when their last digest was composed, and whether it is still unsent."""
    return await conn.fetch(
        "SELECT i.recipient_id, i.target, bool_or(i.new_case) AS new_case,"
        " (SELECT max(created_at) FROM digests d WHERE d.recipient_id = i.recipient_id)"
        "  AS last_sent"
        " , EXISTS (SELECT 1 FROM digests d JOIN deliveries v USING (digest_id)"
        "  WHERE d.recipient_id = i.recipient_id AND v.state = 'pending') AS unsent"
        " FROM (SELECT recipient_id, target, new_case, queued_at FROM digest_items"
        "  WHERE digest_id IS NULL UNION ALL SELECT recipient_id, target, false, queued_at"
        "  FROM overdue_items WHERE digest_id IS NULL) AS i"
        " GROUP BY i.recipient_id, i.target ORDER BY min(i.queued_at)"
    )


async def compose_digest(conn: Conn, recipient_id: str, target: str) -> uuid.UUID | None:
    """Every alert and overdue item waiting for one recipient becomes one digest (how
    many cases changed, how many notices without a case, how many things are past their
    period) and one e-mail delivery; None if nothing waited."""
    digest_id = uuid.uuid4()
    # What was followed up meanwhile (acknowledged, contact made, closed) is no longer on
    # the overview: it is not told of.
    await conn.execute(
        "DELETE FROM overdue_items o"
        " WHERE o.recipient_id = $1 AND o.target = $2 AND o.digest_id IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM matches m LEFT JOIN alerts a ON a.alert_id = o.alert_id"
        "  WHERE m.match_id = o.match_id AND m.state = 'open' AND CASE WHEN o.alert_id IS NULL"
        "  THEN m.contact_made_at IS NULL ELSE a.acknowledged_at IS NULL END)",
        recipient_id,
        target,
    )
    await conn.execute(
        "INSERT INTO digests (digest_id, recipient_id) VALUES ($1, $2)", digest_id, recipient_id
    )
    taken = await conn.fetchval(
        "WITH taken AS (UPDATE digest_items SET digest_id = $1"
        "  WHERE recipient_id = $2 AND target = $3 AND digest_id IS NULL RETURNING match_id),"
        " late AS (UPDATE overdue_items SET digest_id = $1"
        "  WHERE recipient_id = $2 AND target = $3 AND digest_id IS NULL RETURNING 1)"
        " UPDATE digests SET cases = (SELECT count(DISTINCT match_id) FROM taken),"
        "  notices = (SELECT count(*) FROM taken WHERE match_id IS NULL),"
        "  overdue = (SELECT count(*) FROM late)"
        " WHERE digest_id = $1 RETURNING cases + notices + overdue",
        digest_id,
        recipient_id,
        target,
    )
    if not taken:
        await conn.execute("DELETE FROM digests WHERE digest_id = $1", digest_id)
        return None
    await conn.execute(
        "INSERT INTO deliveries (delivery_id, digest_id, channel, target)"
        " VALUES ($1, $2, 'email', $3) ON CONFLICT DO NOTHING",
        uuid.uuid5(digest_id, f"email/{target}"),
        digest_id,
        target,
    )
    return digest_id


async def prune_digests(conn: Conn, before: datetime) -> int:
    """Digests composed before `before` whose e-mail went or was given up go, with their
    deliveries (the worker's address) and their items."""
    return len(
        await conn.fetch(
            "DELETE FROM digests g WHERE g.created_at < $1 AND NOT EXISTS ("
            " SELECT 1 FROM deliveries v WHERE v.digest_id = g.digest_id"
            " AND v.state = 'pending') RETURNING digest_id",
            before,
        )
    )


async def claim_deliveries(conn: Conn, limit: int, lease_seconds: float) -> list[asyncpg.Record]:
    """Due deliveries, leased so another instance does not send them at the same time;
    each with its alert's fields, or its digest's counts and the subjects of the alerts
    it tells of (for the audit log)."""
    return await conn.fetch(
        "UPDATE deliveries d SET next_attempt_at = now() + make_interval(secs => $2),"
        " attempts = d.attempts + 1"
        " FROM (SELECT q.delivery_id, a.match_id, a.kind, a.issued_at, a.occasion,"
        "  coalesce(a.recipient_id, g.recipient_id) AS recipient_id, g.cases, g.notices,"
        "  g.overdue, CASE WHEN q.digest_id IS NULL THEN a.subjects ELSE ("
        "   SELECT coalesce(array_agg(DISTINCT s) FILTER (WHERE s IS NOT NULL), '{}')"
        "   FROM (SELECT unnest(ia.subjects) AS s FROM digest_items i"
        "    JOIN alerts ia ON ia.alert_id = i.alert_id WHERE i.digest_id = q.digest_id"
        "    UNION SELECT unnest(oa.subjects) FROM overdue_items o"
        "    JOIN alerts oa ON oa.alert_id = o.alert_id WHERE o.digest_id = q.digest_id"
        "    UNION SELECT p.subject FROM overdue_items o JOIN match_parties p"
        "    ON p.match_id = o.match_id WHERE o.digest_id = q.digest_id"
        "    AND o.alert_id IS NULL) AS told) END AS subjects"
        "  FROM deliveries q LEFT JOIN alerts a ON a.alert_id = q.alert_id"
        "  LEFT JOIN digests g ON g.digest_id = q.digest_id"
        "  WHERE q.delivery_id IN (SELECT delivery_id FROM deliveries WHERE state = 'pending'"
        "   AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT $1"
        "   FOR UPDATE SKIP LOCKED)) AS x"
        " WHERE d.delivery_id = x.delivery_id"
        " RETURNING d.delivery_id, d.alert_id, d.digest_id, d.channel, d.target, d.attempts,"
        " x.match_id, x.kind, x.recipient_id, x.issued_at, x.occasion, x.subjects,"
        " x.cases, x.notices, x.overdue",
        limit,
        lease_seconds,
    )


async def delivered(conn: Conn, delivery_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE deliveries SET state = 'sent', sent_at = now(), last_error = NULL"
        " WHERE delivery_id = $1",
        delivery_id,
    )


async def retry_later(conn: Conn, delivery_id: uuid.UUID, after: float, error: str) -> None:
    await conn.execute(
        "UPDATE deliveries SET next_attempt_at = now() + make_interval(secs => $2),"
        " last_error = $3 WHERE delivery_id = $1",
        delivery_id,
        after,
        error[:500],
    )


async def give_up(conn: Conn, delivery_id: uuid.UUID, error: str) -> None:
    await conn.execute(
        "UPDATE deliveries SET state = 'dead', last_error = $2 WHERE delivery_id = $1",
        delivery_id,
        error[:500],
    )


# --- wijk trends (anonymous) -------------------------------------------------------


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


async def lock_match(conn: Conn, match_id: uuid.UUID) -> None:
    """Serialise every change to one match: its raise, joins, transfer and end, and an
    erasure, whichever topic and subscriber they come from."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"match:{match_id}")


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

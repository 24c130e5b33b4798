"""Matches as notification keeps them: parties, the coordinator, contacts made."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

import asyncpg

from services.notification.domain import About, TeamWorker
from shared.contracts import MatchContact, OrganisationCategory, WorkerContact
from shared.db import Conn, hashtext, lock


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


async def yours_all(conn: Conn, worker_id: str, organisation: str | None) -> list[asyncpg.Record]:
    """Every sealed own registration of a worker (at their organisation) that is party to
    a match, with the match's state."""
    if organisation is None:
        return []
    return await conn.fetch(
        "SELECT p.match_id, p.registration_id, p.subject, p.yours, m.state"
        " FROM match_parties p JOIN matches m ON m.match_id = p.match_id"
        " WHERE p.worker_id = $1 AND p.organisation = $2"
        " AND p.yours IS NOT NULL AND p.subject IS NOT NULL",
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
    await lock(conn, [f"assign:{team_id}"], previously=hashtext)


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

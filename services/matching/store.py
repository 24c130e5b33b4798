"""Matching's own schema: registrations (personal fields sealed), matches, participants."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from services.matching.domain import MatchDecision
from shared.db import Conn


@dataclass(frozen=True)
class StoredRegistration:
    """A registration as kept: its personal fields sealed, to be opened with the key store."""

    registration_id: uuid.UUID
    subject: str
    organisation: str
    registered_at: datetime
    expires_at: datetime
    sealed: str


async def lock_subject(conn: Conn, subject: str) -> None:
    """Serialise decisions about one subject across instances until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", subject)


async def add_registration(conn: Conn, reg: StoredRegistration) -> bool:
    row = await conn.fetchrow(
        "INSERT INTO registrations (registration_id, subject, organisation, sealed,"
        " registered_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT DO NOTHING RETURNING registration_id",
        reg.registration_id,
        reg.subject,
        reg.organisation,
        reg.sealed,
        reg.registered_at,
        reg.expires_at,
    )
    return row is not None


async def active_registrations(conn: Conn, subject: str, now: datetime) -> list[StoredRegistration]:
    rows = await conn.fetch(
        "SELECT registration_id, subject, organisation, registered_at, expires_at, sealed"
        " FROM registrations WHERE subject = $1 AND expires_at > $2",
        subject,
        now,
    )
    return [StoredRegistration(**dict(r)) for r in rows]


async def has_open_person_match(conn: Conn, subject: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM matches"
            " WHERE subject = $1 AND kind = 'person' AND status = 'open')",
            subject,
        )
    )


async def add_match(conn: Conn, decision: MatchDecision) -> None:
    await conn.execute(
        "INSERT INTO matches (match_id, kind, subject, rule, policy_version)"
        " VALUES ($1, $2, $3, $4, $5)",
        decision.match_id,
        decision.kind.value,
        decision.subject,
        decision.rule,
        decision.policy_version,
    )
    await conn.executemany(
        "INSERT INTO match_participants (match_id, registration_id) VALUES ($1, $2)",
        [(decision.match_id, p.registration_id) for p in decision.participants],
    )


async def counts(conn: Conn) -> dict[str, int]:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM registrations) AS registrations,"
        " (SELECT count(*) FROM matches WHERE status = 'open') AS open_matches"
    )
    assert row is not None
    return {"registrations": row["registrations"], "open_matches": row["open_matches"]}

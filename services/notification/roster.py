"""The roster: which JGT team serves which wijk, its workers and team lead, and the
municipality's regie role. Loaded from a YAML file, kept in notification's schema, and
changed afterwards only through the functions here, each of which records an audit event
in the same transaction as the change."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.audit import AuditTrail
from shared.config import parse_yaml_model
from shared.contracts import AuditAction, AuditActor, OrganisationCategory, WijkCode, WorkerContact
from shared.db import Conn

UserId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


class RosterError(ValueError):
    """A broken roster file or an impossible roster change; the message says what to fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Person(_Strict):
    id: UserId
    name: str = Field(min_length=1, max_length=120)
    email: Annotated[
        str, StringConstraints(pattern=r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,}$")
    ]
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()-]{6,20}$")] | None = None


class Worker(Person):
    category: OrganisationCategory = OrganisationCategory.JEUGDHULP
    active: bool = True


class Team(_Strict):
    id: UserId
    name: str = Field(min_length=1, max_length=120)
    wijken: list[WijkCode] = Field(min_length=1)
    team_lead: Person
    workers: list[Worker] = Field(min_length=1)


class RosterFile(_Strict):
    version: int = Field(ge=1)
    municipality: str = Field(min_length=1)
    regie: list[Person] = Field(min_length=1)
    teams: list[Team] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> RosterFile:
        seen: dict[str, str] = {}
        for team in self.teams:
            for wijk in team.wijken:
                if wijk in seen:
                    raise ValueError(
                        f"wijk {wijk} is served by both {seen[wijk]} and {team.id}; "
                        "a wijk has exactly one team"
                    )
                seen[wijk] = team.id
        people = [p.id for p in self.regie] + [
            p.id for t in self.teams for p in (t.team_lead, *t.workers)
        ]
        doubles = sorted({p for p in people if people.count(p) > 1})
        if doubles:
            raise ValueError(f"people listed twice: {', '.join(doubles)}; list each once")
        return self


def load_roster_file(path: Path) -> RosterFile:
    try:
        text = path.read_text()
    except OSError as exc:
        raise RosterError(
            f"cannot read the roster file {path}: {exc}; set VS_ROSTER_FILE"
        ) from None
    return parse_yaml_model(RosterFile, text, source=str(path), error=RosterError)


def contact(row: asyncpg.Record) -> WorkerContact:
    return WorkerContact(
        worker_id=row["user_id"], display_name=row["name"], email=row["email"], phone=row["phone"]
    )


async def is_empty(conn: Conn) -> bool:
    return not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM members)")


async def load(conn: Conn, roster: RosterFile, audit: AuditTrail, actor: AuditActor) -> None:
    """Make the stored roster equal to the file: new people and teams are added, wijken
    follow the file, people absent from the file are deactivated (never deleted: their
    alerts keep their meaning). One audit event per change."""
    for team in roster.teams:
        before = await conn.fetchval("SELECT name FROM teams WHERE team_id = $1", team.id)
        if before == team.name:
            continue
        await conn.execute(
            "INSERT INTO teams (team_id, name) VALUES ($1, $2)"
            " ON CONFLICT (team_id) DO UPDATE SET name = EXCLUDED.name",
            team.id,
            team.name,
        )
        await audit.record(
            conn,
            action=AuditAction.CREATE if before is None else AuditAction.UPDATE,
            object_type="roster-team",
            object_id=team.id,
            actor=actor,
            purpose="roster: team " + ("added" if before is None else "renamed"),
        )
    for team in roster.teams:
        for wijk in team.wijken:
            await move_wijk(conn, wijk, team.id, audit, actor)
        await _upsert(conn, team.team_lead, "team_lead", team.id, None, audit, actor)
        for worker in team.workers:
            await _upsert(conn, worker, "worker", team.id, worker, audit, actor)
    for person in roster.regie:
        await _upsert(conn, person, "regie", None, None, audit, actor)
    listed = [p.id for p in roster.regie] + [
        p.id for t in roster.teams for p in (t.team_lead, *t.workers)
    ]
    gone = await conn.fetch(
        "SELECT user_id FROM members WHERE active AND NOT (user_id = ANY($1))", listed
    )
    for row in gone:
        await set_active(conn, row["user_id"], False, audit, actor)


async def _upsert(
    conn: Conn,
    person: Person,
    role: str,
    team_id: str | None,
    worker: Worker | None,
    audit: AuditTrail,
    actor: AuditActor,
) -> None:
    category = (worker.category if worker else OrganisationCategory.JEUGDHULP).value
    active = worker.active if worker else True
    before = await conn.fetchrow(
        "SELECT team_id, role, name, email, phone, category, active FROM members"
        " WHERE user_id = $1",
        person.id,
    )
    after = (team_id, role, person.name, person.email, person.phone, category, active)
    if before is not None and tuple(before.values()) == after:
        return
    await conn.execute(
        "INSERT INTO members (user_id, team_id, role, name, email, phone, category, active)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (user_id) DO UPDATE SET"
        " team_id = EXCLUDED.team_id, role = EXCLUDED.role, name = EXCLUDED.name,"
        " email = EXCLUDED.email, phone = EXCLUDED.phone, category = EXCLUDED.category,"
        " active = EXCLUDED.active",
        person.id,
        *after,
    )
    await audit.record(
        conn,
        action=AuditAction.CREATE if before is None else AuditAction.UPDATE,
        object_type="roster-member",
        object_id=person.id,
        actor=actor,
        purpose=f"roster: {role} {'added to' if before is None else 'changed in'} "
        f"{team_id or 'the regie role'}",
    )


async def add_worker(
    conn: Conn, worker: Worker, team_id: str, audit: AuditTrail, actor: AuditActor
) -> None:
    if await conn.fetchval("SELECT 1 FROM teams WHERE team_id = $1", team_id) is None:
        raise RosterError(f"no team {team_id!r}: `vroegsignaal roster show` lists the teams")
    if await conn.fetchval("SELECT 1 FROM members WHERE user_id = $1", worker.id) is not None:
        raise RosterError(
            f"{worker.id} is already on the roster; use `roster activate` or another id"
        )
    await _upsert(conn, worker, "worker", team_id, worker, audit, actor)


async def set_active(
    conn: Conn, user_id: str, active: bool, audit: AuditTrail, actor: AuditActor
) -> None:
    """Deactivate (or reactivate) a person. A deactivated coordinator's open matches get
    a new coordinator from the running service (within its escalation interval), and
    everyone involved is told; their alerts stay in the log."""
    found = await conn.fetchval(
        "UPDATE members SET active = $2 WHERE user_id = $1 RETURNING user_id", user_id, active
    )
    if found is None:
        raise RosterError(f"no one with id {user_id!r} on the roster")
    await audit.record(
        conn,
        action=AuditAction.UPDATE,
        object_type="roster-member",
        object_id=user_id,
        actor=actor,
        purpose=f"roster: {'re' if active else 'de'}activated",
    )


async def remove(conn: Conn, user_id: str, audit: AuditTrail, actor: AuditActor) -> None:
    """Remove a person who never received anything; anyone else is deactivated instead."""
    received = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM alerts WHERE recipient_id = $1)"
        " OR EXISTS (SELECT 1 FROM matches WHERE coordinator_id = $1)",
        user_id,
    )
    if received:
        raise RosterError(
            f"{user_id} has received alerts or coordinated matches, so the record stays: "
            f"use `vroegsignaal roster deactivate {user_id}`"
        )
    found = await conn.fetchval("DELETE FROM members WHERE user_id = $1 RETURNING 1", user_id)
    if found is None:
        raise RosterError(f"no one with id {user_id!r} on the roster")
    await audit.record(
        conn,
        action=AuditAction.DELETE,
        object_type="roster-member",
        object_id=user_id,
        actor=actor,
        purpose="roster: removed",
    )


async def move_wijk(
    conn: Conn, wijk: str, team_id: str, audit: AuditTrail, actor: AuditActor
) -> None:
    if not re.fullmatch(r"WK\d{6}", wijk):
        raise RosterError(f"{wijk!r} is not a wijk code: CBS codes look like WK099901")
    if await conn.fetchval("SELECT 1 FROM teams WHERE team_id = $1", team_id) is None:
        raise RosterError(f"no team {team_id!r}: `vroegsignaal roster show` lists the teams")
    before = await conn.fetchval("SELECT team_id FROM wijken WHERE wijk = $1", wijk)
    if before == team_id:
        return
    await conn.execute(
        "INSERT INTO wijken (wijk, team_id) VALUES ($1, $2)"
        " ON CONFLICT (wijk) DO UPDATE SET team_id = EXCLUDED.team_id",
        wijk,
        team_id,
    )
    await audit.record(
        conn,
        action=AuditAction.ASSIGN,
        object_type="roster-wijk",
        object_id=wijk,
        actor=actor,
        purpose=f"roster: wijk served by {team_id}" + (f" (was {before})" if before else ""),
    )


async def team_of(conn: Conn, wijk: str) -> str | None:
    team: str | None = await conn.fetchval("SELECT team_id FROM wijken WHERE wijk = $1", wijk)
    return team


async def person(conn: Conn, user_id: str) -> WorkerContact | None:
    row = await conn.fetchrow(
        "SELECT user_id, name, email, phone FROM members WHERE user_id = $1", user_id
    )
    return None if row is None else contact(row)


async def team_leads(conn: Conn, team_id: str) -> list[WorkerContact]:
    rows = await conn.fetch(
        "SELECT user_id, name, email, phone FROM members"
        " WHERE team_id = $1 AND role = 'team_lead' AND active ORDER BY user_id",
        team_id,
    )
    return [contact(r) for r in rows]


async def regie(conn: Conn) -> list[WorkerContact]:
    rows = await conn.fetch(
        "SELECT user_id, name, email, phone FROM members"
        " WHERE role = 'regie' AND active ORDER BY user_id"
    )
    return [contact(r) for r in rows]


async def teams_led_by(conn: Conn, user_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT team_id FROM members WHERE user_id = $1 AND role = 'team_lead' AND active",
        user_id,
    )
    return [r["team_id"] for r in rows]


async def wijken_of(conn: Conn, team_ids: list[str] | None) -> list[str]:
    """The wijken the teams serve (None: every wijk of the roster), in order."""
    rows = await conn.fetch(
        "SELECT wijk FROM wijken WHERE $1::text[] IS NULL OR team_id = ANY($1) ORDER BY wijk",
        team_ids,
    )
    return [r["wijk"] for r in rows]


async def show(conn: Conn) -> dict[str, object]:
    teams = await conn.fetch("SELECT team_id, name FROM teams ORDER BY team_id")
    members = await conn.fetch(
        "SELECT user_id, team_id, role, name, category, active FROM members"
        " ORDER BY team_id NULLS FIRST, role, user_id"
    )
    wijken = await conn.fetch("SELECT wijk, team_id FROM wijken ORDER BY wijk")
    return {
        "teams": [
            {
                "id": t["team_id"],
                "name": t["name"],
                "wijken": [w["wijk"] for w in wijken if w["team_id"] == t["team_id"]],
                "members": [
                    {k: m[k] for k in ("user_id", "role", "name", "category", "active")}
                    for m in members
                    if m["team_id"] == t["team_id"]
                ],
            }
            for t in teams
        ],
        "regie": [
            {k: m[k] for k in ("user_id", "name", "active")}
            for m in members
            if m["role"] == "regie"
        ],
    }

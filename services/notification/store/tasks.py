"""Informing the family: the registering workers' tasks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shared.db import Conn


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

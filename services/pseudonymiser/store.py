"""The pseudonymiser's own schema: each partner's use of its daily budget and its rate
bucket, both shared by every replica."""

from __future__ import annotations

from datetime import date

from shared.db import Conn


async def spend(conn: Conn, partner_id: str, day: date, elements: int, budget: int) -> int | None:
    """Count `elements` against the partner's budget of `day`, atomically across replicas:
    the day's use after it, or None (nothing counted) when it would exceed the budget."""
    used = await conn.fetchval(
        "INSERT INTO daily_use (partner_id, day, elements)"
        " SELECT $1::text, $2::date, $3::bigint WHERE $3::bigint <= $4::bigint"
        " ON CONFLICT (partner_id, day) DO UPDATE SET elements = daily_use.elements + $3::bigint"
        " WHERE daily_use.elements + $3::bigint <= $4::bigint RETURNING elements",
        partner_id,
        day,
        elements,
        budget,
    )
    return None if used is None else int(used)


async def refused(conn: Conn, partner_id: str, day: date) -> tuple[int, int]:
    """Count a refusal past the budget: (the day's use, how many refusals so far)."""
    row = await conn.fetchrow(
        "INSERT INTO daily_use (partner_id, day, elements, refused) VALUES ($1, $2, 0, 1)"
        " ON CONFLICT (partner_id, day) DO UPDATE SET refused = daily_use.refused + 1"
        " RETURNING elements, refused",
        partner_id,
        day,
    )
    assert row is not None
    return int(row["elements"]), int(row["refused"])


async def used(conn: Conn, partner_id: str, day: date) -> int:
    """The elements evaluated for the partner on `day`."""
    value = await conn.fetchval(
        "SELECT elements FROM daily_use WHERE partner_id = $1 AND day = $2", partner_id, day
    )
    return int(value or 0)


async def take(conn: Conn, partner_id: str, elements: int, rate: float, burst: float) -> bool:
    """Take `elements` from the partner's token bucket (refilled at `rate` per second up to
    `burst`), atomically across replicas: False (nothing taken) when too few are left."""
    level = await conn.fetchval(
        "INSERT INTO rate_buckets AS b (partner_id, level, at)"
        " SELECT $1::text, $3::float8 - $2::float8, clock_timestamp()"
        " WHERE $2::float8 <= $3::float8"
        " ON CONFLICT (partner_id) DO UPDATE SET"
        "  level = least($3::float8, b.level + $4::float8 *"
        "   extract(epoch FROM clock_timestamp() - b.at)) - $2::float8,"
        "  at = clock_timestamp()"
        " WHERE least($3::float8, b.level + $4::float8 *"
        "   extract(epoch FROM clock_timestamp() - b.at)) >= $2::float8"
        " RETURNING level",
        partner_id,
        float(elements),
        float(burst),
        float(rate),
    )
    return level is not None

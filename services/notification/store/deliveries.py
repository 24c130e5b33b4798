"""Deliveries: digest items, digests, e-mails and webhooks waiting, sent or given up."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from services.notification.domain import Alert
from shared.db import Conn


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
    # the overview: it is not told of (domain.still_overdue, in SQL; a test holds the two
    # to one answer).
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

"""Audit's own schema: the append-only entries, the Merkle tree's perfect subtrees, the
signed tree heads, and the erasure reviews with the privacy officer's decisions. Its
functions take a connection (the service's reads, the verification, the tests); the
use cases have them as PostgresRepository, which keeps ports.AuditRepository, the same
contract as the in-memory one's."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from services.audit import merkle
from services.audit.domain import AuditEntry, SignedHead, SignedPruning
from services.audit.ports import ErasureReview
from shared.audit import AuditTrail
from shared.batch import current as current_batch
from shared.contracts import AuditEvent
from shared.db import Conn, lock
from shared.unit_of_work import PostgresUnitOfWork, postgres_units

T = TypeVar("T")
# One appender at a time, so leaf indexes have no gaps.
TREE_LOCK = "audit:tree"


def before_this_release(_: str) -> tuple[str, object]:
    """The release before took the tree's lock as this number ("audit")."""
    return "$1::bigint", 0x6175646974


async def lock_tree(conn: Conn) -> None:
    await lock(conn, [TREE_LOCK], previously=before_this_release)


class TreeInconsistent(RuntimeError):
    """A subtree hash the tree needs is missing: the tree tables were tampered with."""


async def with_subtrees(conn: Conn, compute: Callable[[merkle.SubtreeHash], T]) -> T:
    """Run a pure tree computation with the perfect-subtree hashes it needs, fetched in
    one query. The shape of the computation does not depend on the hash values, so a
    first dry run tells which subtrees it will ask for."""
    wanted: set[tuple[int, int]] = set()

    def record(start: int, end: int) -> bytes:
        wanted.add((start, end))
        return bytes(merkle.HASH_SIZE)

    compute(record)
    keys = [((e - s).bit_length() - 1, s // (e - s)) for s, e in wanted]
    rows = await conn.fetch(
        "SELECT level, position, hash FROM tree_nodes"
        " WHERE (level, position) IN (SELECT * FROM unnest($1::smallint[], $2::bigint[]))",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    found = {(r["level"], r["position"]): bytes(r["hash"]) for r in rows}

    def lookup(start: int, end: int) -> bytes:
        width = end - start
        try:
            return found[(width.bit_length() - 1, start // width)]
        except KeyError:
            raise TreeInconsistent(f"the subtree of leaves [{start}, {end}) is missing") from None

    return compute(lookup)


async def size(conn: Conn) -> int:
    value = await conn.fetchval("SELECT max(leaf_index) FROM entries")
    return 0 if value is None else int(value) + 1


_ENTRY_COLUMNS = (
    "leaf_index", "leaf_hash", "event_id", "occurred_at", "recorded_at", "action", "outcome",
    "actor_id", "actor_role", "on_behalf_of", "subjects", "object_type", "object_id",
    "source_system", "source_instance", "purpose", "trace_id", "canonical",
)  # fmt: skip


def _entry_row(index: int, leaf: bytes, entry: AuditEntry) -> tuple[object, ...]:
    e = entry.event
    return (
        index, leaf, e.event_id, e.occurred_at, entry.recorded_at, e.action.value,
        e.outcome.value, e.actor.actor_id, e.actor.role, e.on_behalf_of, list(e.subjects),
        e.object_type, e.object_id, e.source_system, e.source_instance, e.purpose,
        e.trace_id, entry.canonical,
    )  # fmt: skip


async def append(conn: Conn, *entries: AuditEntry) -> int:
    """Append entries as the next leaves, in their order, in one step: one lock, one read
    of the stored subtrees they complete, one copy each of the entries and of the new
    tree nodes. O(k log n) for k entries. Returns the first one's leaf index."""
    await lock_tree(conn)
    first = await size(conn)
    if not entries:
        return first
    leaves = [merkle.leaf_hash(entry.canonical) for entry in entries]

    def completed(stored: merkle.SubtreeHash) -> list[tuple[int, int, bytes]]:
        made: dict[tuple[int, int], bytes] = {}

        def subtree(start: int, end: int) -> bytes:
            width = end - start
            found = made.get((width.bit_length() - 1, start // width))
            return found if found is not None else stored(start, end)

        nodes = []
        for index, leaf in enumerate(leaves, start=first):
            for level, position, hash_ in merkle.perfect_nodes_completed(index, leaf, subtree):
                made[(level, position)] = hash_
                nodes.append((level, position, hash_))
        return nodes

    nodes = await with_subtrees(conn, completed)
    await conn.copy_records_to_table(
        "entries",
        columns=_ENTRY_COLUMNS,
        records=[_entry_row(index, leaf, entry) for index, leaf, entry in
                 zip(range(first, first + len(entries)), leaves, entries, strict=True)],
    )  # fmt: skip
    await conn.copy_records_to_table(
        "tree_nodes", columns=("level", "position", "hash"), records=nodes
    )
    return first


async def root(conn: Conn, tree_size: int) -> bytes:
    if tree_size == 0:
        return merkle.EMPTY_ROOT
    return await with_subtrees(conn, lambda lookup: merkle.range_hash(lookup, 0, tree_size))


async def inclusion(conn: Conn, index: int, tree_size: int) -> list[bytes]:
    return await with_subtrees(
        conn, lambda lookup: merkle.inclusion_proof(lookup, index, tree_size)
    )


async def consistency(conn: Conn, first: int, second: int) -> list[bytes]:
    return await with_subtrees(conn, lambda lookup: merkle.consistency_proof(lookup, first, second))


async def add_head(conn: Conn, head: SignedHead) -> None:
    await conn.execute(
        "INSERT INTO tree_heads (size, root, signed_at, key_id, signature)"
        " VALUES ($1, $2, $3, $4, $5)",
        head.size,
        head.root,
        head.signed_at,
        head.key_id,
        head.signature,
    )


async def latest_head(conn: Conn) -> SignedHead | None:
    row = await conn.fetchrow(
        "SELECT size, root, signed_at, key_id, signature FROM tree_heads"
        " ORDER BY size DESC, signed_at DESC LIMIT 1"
    )
    return _head(row) if row else None


async def heads(conn: Conn) -> list[SignedHead]:
    rows = await conn.fetch(
        "SELECT size, root, signed_at, key_id, signature FROM tree_heads ORDER BY size, signed_at"
    )
    return [_head(r) for r in rows]


def _head(row: Any) -> SignedHead:
    return SignedHead(
        size=row["size"],
        root=bytes(row["root"]),
        signed_at=row["signed_at"],
        key_id=row["key_id"],
        signature=bytes(row["signature"]),
    )


async def leaf_hash_at(conn: Conn, index: int) -> bytes | None:
    value = await conn.fetchval("SELECT leaf_hash FROM entries WHERE leaf_index = $1", index)
    return None if value is None else bytes(value)


async def summary(conn: Conn) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT source_system, action, outcome, count(*) AS entries FROM entries"
        " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    return [dict(r) for r in rows]


async def events_about(conn: Conn, subject: str) -> list[bytes]:
    """The canonical entries that name `subject` (through the subjects index)."""
    rows = await conn.fetch(
        "SELECT canonical FROM entries WHERE subjects @> ARRAY[$1]::text[] ORDER BY leaf_index",
        subject,
    )
    return [bytes(r["canonical"]) for r in rows]


# What each kind of shredding names: a subject's data key by its subject, the other
# keys (a family's, a trend window's) by their name in the entry's object id; and the
# one service that shreds each (an entry of that kind from any other is not trusted).
SHRED_BY_SUBJECT = ("data-key",)
SHRED_BY_NAME = ("family-key", "trend-window-key")
SHREDDER = {"data-key": "matching", "family-key": "matching", "trend-window-key": "intake"}


async def recorded_shreds(conn: Conn) -> list[tuple[str, datetime]]:
    """Every key shredding the log records: (the key's name in the key store, when)."""
    rows = await conn.fetch(
        "SELECT object_type, object_id, subjects, occurred_at, source_system FROM entries"
        " WHERE action = 'shred' AND object_type = ANY($1) ORDER BY leaf_index",
        [*SHRED_BY_SUBJECT, *SHRED_BY_NAME],
    )
    found = []
    for r in rows:
        if r["source_system"] != SHREDDER[r["object_type"]]:
            continue
        names = r["subjects"] if r["object_type"] in SHRED_BY_SUBJECT else [r["object_id"]]
        found += [(name, r["occurred_at"]) for name in names if name]
    return found


async def report_subjects(conn: Conn, request_id: Any) -> list[str]:
    """Whom an access report is about (from the log entry of its making)."""
    rows = await conn.fetch(
        "SELECT DISTINCT unnest(subjects) AS subject FROM entries"
        " WHERE object_type = 'subject-report' AND action = 'export' AND object_id = $1",
        str(request_id),
    )
    return [r["subject"] for r in rows]


async def report(conn: Conn, request_id: uuid.UUID) -> str | None:
    """An access report as made (JSON), None when there is none (yet)."""
    found: str | None = await conn.fetchval(
        "SELECT report FROM subject_reports WHERE request_id = $1", request_id
    )
    return found


async def recent_reports(conn: Conn, limit: int) -> list[tuple[uuid.UUID, datetime]]:
    """The newest access reports: request id and when each was made."""
    rows = await conn.fetch(
        "SELECT request_id, created_at FROM subject_reports ORDER BY created_at DESC LIMIT $1",
        limit,
    )
    return [(r["request_id"], r["created_at"]) for r in rows]


async def recorded_after_head(conn: Conn, since: datetime, until: datetime, size: int) -> int:
    """Entries recorded in [since, until) that a head of `size` does not cover yet."""
    later: int = await conn.fetchval(
        "SELECT count(*) FROM entries WHERE recorded_at >= $1 AND recorded_at < $2"
        " AND leaf_index >= $3",
        since,
        until,
        size,
    )
    return later


# --- full verifications: one at a time, whichever replica runs it --------------------


async def last_verification(conn: Conn) -> Any:
    return await conn.fetchrow(
        "SELECT verification_id, started_at, started_by, finished_at, entries, problems"
        " FROM verifications ORDER BY started_at DESC LIMIT 1"
    )


async def start_verification(
    conn: Conn, verification_id: uuid.UUID, started_by: str, stale_seconds: float
) -> bool:
    """Start one unless one is running (the partial unique index); one whose process
    died `stale_seconds` ago ends as interrupted first, so it blocks no new one."""
    await conn.execute(
        "UPDATE verifications SET finished_at = now(), problems = $1::jsonb"
        " WHERE finished_at IS NULL AND started_at < now() - make_interval(secs => $2)",
        json.dumps(["interrupted: its process ended before it did; start it again"]),
        stale_seconds,
    )
    started = await conn.fetchval(
        "INSERT INTO verifications (verification_id, started_by) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING RETURNING verification_id",
        verification_id,
        started_by,
    )
    return started is not None


async def finish_verification(
    conn: Conn, verification_id: uuid.UUID, at: datetime, entries: int, problems: list[str]
) -> None:
    await conn.execute(
        "UPDATE verifications SET finished_at = $2, entries = $3, problems = $4::jsonb"
        " WHERE verification_id = $1",
        verification_id,
        at,
        entries,
        json.dumps(problems),
    )


async def save_report(conn: Conn, request_id: Any, report: str) -> bool:
    return bool(
        await conn.fetchval(
            "INSERT INTO subject_reports (request_id, report) VALUES ($1, $2::jsonb)"
            " ON CONFLICT DO NOTHING RETURNING true",
            request_id,
            report,
        )
    )


@dataclass(frozen=True)
class Search:
    """The privacy officer's criteria; None means any. Results come in log order, a page
    at a time, after `after` (a leaf index)."""

    subject: str | None = None
    user: str | None = None
    organisation: str | None = None
    action: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    after: int = -1
    limit: int = 100

    def is_empty(self) -> bool:
        return not any((self.subject, self.user, self.organisation, self.action, self.start,
                        self.end))  # fmt: skip


async def search(conn: Conn, s: Search) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT leaf_index, canonical FROM entries WHERE leaf_index > $1"
        " AND ($2::text IS NULL OR subjects @> ARRAY[$2]::text[])"
        " AND ($3::text IS NULL OR actor_id = $3 OR on_behalf_of = $3)"
        " AND ($4::text IS NULL"
        "      OR convert_from(canonical, 'UTF8')::jsonb #>> '{actor,organisation}' = $4)"
        " AND ($5::text IS NULL OR action = $5)"
        " AND ($6::timestamptz IS NULL OR occurred_at >= $6)"
        " AND ($7::timestamptz IS NULL OR occurred_at < $7)"
        " ORDER BY leaf_index LIMIT $8",
        s.after,
        s.subject,
        s.user,
        s.organisation,
        s.action,
        s.start,
        s.end,
        s.limit,
    )
    return [
        {"leaf_index": r["leaf_index"], "event": json.loads(bytes(r["canonical"]))} for r in rows
    ]


async def pruned_upto(conn: Conn) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(upto), 0) FROM prunings"))


async def prunable_upto(conn: Conn, cutoff: datetime) -> int:
    """How many leading entries were all recorded before `cutoff`."""
    first_kept = await conn.fetchval(
        "SELECT min(leaf_index) FROM entries WHERE recorded_at >= $1", cutoff
    )
    return int(first_kept) if first_kept is not None else await size(conn)


async def prune(conn: Conn, pruning: SignedPruning) -> int:
    """Record the signed pruning, then remove the entries it covers (the trigger lets only
    those go). The tree's nodes stay. Returns how many entries were removed."""
    await conn.execute(
        "INSERT INTO prunings (upto, prefix_root, cutoff, pruned_at, key_id, signature)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        pruning.upto,
        pruning.prefix_root,
        pruning.cutoff,
        pruning.pruned_at,
        pruning.key_id,
        pruning.signature,
    )
    status = await conn.execute("DELETE FROM entries WHERE leaf_index < $1", pruning.upto)
    return int(status.split()[-1])


async def prunings(conn: Conn) -> list[SignedPruning]:
    rows = await conn.fetch(
        "SELECT upto, prefix_root, cutoff, pruned_at, key_id, signature FROM prunings ORDER BY upto"
    )
    return [
        SignedPruning(
            r["upto"],
            bytes(r["prefix_root"]),
            r["cutoff"],
            r["pruned_at"],
            r["key_id"],
            bytes(r["signature"]),
        )
        for r in rows
    ]


# --- erasure reviews ---------------------------------------------------------------


REVIEW_COLUMNS = (
    "r.request_id, r.subject, r.partner_id, r.requested_at, r.ended,"
    " r.organisations_remaining, d.approved, d.decided_by, d.reason, d.decided_at"
)


async def add_review(conn: Conn, review: ErasureReview) -> bool:
    return bool(
        await conn.fetchval(
            "INSERT INTO erasure_reviews (request_id, subject, partner_id, requested_at,"
            " ended, organisations_remaining) VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT DO NOTHING RETURNING true",
            review.request_id,
            review.subject,
            review.partner_id,
            review.requested_at,
            review.ended,
            review.organisations_remaining,
        )
    )


async def pending_of(conn: Conn, subject: str, partner_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT true FROM erasure_reviews r LEFT JOIN erasure_decisions d USING (request_id)"
            " WHERE r.subject = $1 AND r.partner_id = $2 AND d.request_id IS NULL LIMIT 1",
            subject,
            partner_id,
        )
    )


async def reviews(conn: Conn, *, pending: bool, limit: int = 200) -> list[ErasureReview]:
    """Undecided reviews, oldest first; or decided ones, latest decision first."""
    where, order = (
        ("d.request_id IS NULL", "r.requested_at")
        if pending
        else ("d.request_id IS NOT NULL", "d.decided_at DESC")
    )
    rows = await conn.fetch(
        f"SELECT {REVIEW_COLUMNS} FROM erasure_reviews r"
        f" LEFT JOIN erasure_decisions d USING (request_id) WHERE {where}"
        f" ORDER BY {order} LIMIT $1",
        limit,
    )
    return [ErasureReview(**dict(r)) for r in rows]


async def review(conn: Conn, request_id: uuid.UUID) -> ErasureReview | None:
    row = await conn.fetchrow(
        f"SELECT {REVIEW_COLUMNS} FROM erasure_reviews r"
        " LEFT JOIN erasure_decisions d USING (request_id) WHERE r.request_id = $1",
        request_id,
    )
    return ErasureReview(**dict(row)) if row else None


async def add_decision(
    conn: Conn, request_id: uuid.UUID, approved: bool, decided_by: str, reason: str
) -> bool:
    return bool(
        await conn.fetchval(
            "INSERT INTO erasure_decisions (request_id, approved, decided_by, reason)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
            request_id,
            approved,
            decided_by,
            reason,
        )
    )


# --- the repository of the use cases -------------------------------------------------

# Whose claims of messages the audit service's processed_messages rows are.
CONSUMER = "audit"


class PostgresRepository:
    """Audit's repository on PostgreSQL, within the caller's transaction: the functions
    of this module on its connection."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def lock_tree(self) -> None:
        await lock_tree(self.conn)

    async def append(self, *entries: AuditEntry) -> None:
        batch = current_batch()
        if batch is not None and batch.joins(self.conn):
            # A batch of messages appends its entries in one step, before it commits.
            batch.keep("audit-leaves", lambda kept: append(self.conn, *kept)).extend(entries)
        else:
            await append(self.conn, *entries)

    async def size(self) -> int:
        return await size(self.conn)

    async def root(self, size: int) -> bytes:
        return await root(self.conn, size)

    async def latest_head(self) -> SignedHead | None:
        return await latest_head(self.conn)

    async def add_head(self, head: SignedHead) -> None:
        await add_head(self.conn, head)

    async def pruned_upto(self) -> int:
        return await pruned_upto(self.conn)

    async def prunable_upto(self, cutoff: datetime) -> int:
        return await prunable_upto(self.conn, cutoff)

    async def prune(self, pruning: SignedPruning) -> int:
        return await prune(self.conn, pruning)

    async def events_about(self, subject: str) -> list[AuditEvent]:
        return [
            AuditEvent.model_validate_json(raw) for raw in await events_about(self.conn, subject)
        ]

    async def save_report(self, request_id: uuid.UUID, report: dict[str, Any]) -> bool:
        return await save_report(self.conn, request_id, json.dumps(report))

    async def review(self, request_id: uuid.UUID) -> ErasureReview | None:
        return await review(self.conn, request_id)

    async def pending_of(self, subject: str, partner_id: str) -> bool:
        return await pending_of(self.conn, subject, partner_id)

    async def add_review(self, review: ErasureReview) -> bool:
        return await add_review(self.conn, review)

    async def add_decision(
        self, request_id: uuid.UUID, approved: bool, decided_by: str, reason: str
    ) -> bool:
        return await add_decision(self.conn, request_id, approved, decided_by, reason)


def units(
    pool: Callable[[], asyncpg.Pool], audit: AuditTrail
) -> Callable[[], AbstractAsyncContextManager[PostgresUnitOfWork[PostgresRepository]]]:
    """Audit's units of work: each a transaction on a pooled connection (`pool` is
    called late: the pool opens at start)."""
    return postgres_units(pool, PostgresRepository, audit, CONSUMER)

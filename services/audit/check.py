"""`vroegsignaal audit verify`: load the log, the stored tree, the signed heads in the
database and the heads published on the topic, and verify them all."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from aiokafka.errors import KafkaError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.audit import store
from services.audit.domain import SignedHead, SignedPruning
from services.audit.verify import COLUMNS, StoredEntry, verify
from shared.contracts import Topics, TreeHeadSigned
from shared.kafka import read_to_end
from shared.policy import load_policy
from shared.settings import Settings


async def published_heads(settings: Settings) -> list[SignedHead]:
    """Every head on the tree-heads topic: the copies outside the database."""
    records = await read_to_end(settings, Topics(settings.topic_prefix).tree_heads)
    return [_signed(record.value) for record in records if record.value]


def _signed(raw: bytes) -> SignedHead:
    head = TreeHeadSigned.model_validate_json(raw)
    return SignedHead(
        size=head.size,
        root=bytes.fromhex(head.root),
        signed_at=head.signed_at,
        key_id=head.key_id,
        signature=bytes.fromhex(head.signature),
    )


async def check(settings: Settings, public_key: bytes, *, with_topic: bool) -> list[str]:
    """Every problem of the log as it stands, verified while it grows.

    The database is read in one snapshot. The published heads are read from the topic
    twice: before the snapshot (each of those was committed before it was published, so
    an intact database holds it and the entries it covers: each is judged against the
    snapshot) and after it (a head of the snapshot that was published meanwhile is not
    unpublished). A head published only after the first read is judged if the snapshot
    holds it, and otherwise left for the next verification: it was signed after the
    snapshot, or deleted with its entries in the moments between the two reads, which the
    next run sees. A Kafka that cannot be read is a problem; the database is still
    verified on its own."""
    problems: list[str] = []
    before = await _published_or_problem(settings, problems) if with_topic else []
    log = await _snapshot(settings)
    read = with_topic and not problems  # the topic could be read before the snapshot
    after = await _published_or_problem(settings, problems) if read else []
    if read and not problems and log.heads and not after and len(log.pending) < len(log.heads):
        # Nothing to compare with is no proof: a missing topic or a wrong prefix would
        # otherwise pass a log rewritten in the database.
        problems.append(
            f"no signed head was read from {Topics(settings.topic_prefix).tree_heads}"
            " although the database holds some: the published copies could not be"
            " compared (check the topic and VS_TOPIC_PREFIX)"
        )
    # Hashing every entry and checking every signature is CPU work: off the event loop,
    # so a service that verifies itself keeps taking messages and answering its probes.
    return problems + await asyncio.to_thread(
        verify,
        log.entries,
        log.level0,
        log.heads,
        before,
        Ed25519PublicKey.from_public_bytes(public_key),
        log.prunings,
        load_policy(settings.policy_file).audit.retention_years,
        pending=log.pending,
        published_since=after,
    )


async def _published_or_problem(settings: Settings, problems: list[str]) -> list[SignedHead]:
    """The published heads; none, and the reason among the problems, when Kafka cannot
    be read (the database's own checks still run)."""
    try:
        return await published_heads(settings)
    except KafkaError as exc:
        problems.append(f"the published heads could not be read from Kafka: {exc}")
        return []


@dataclass(frozen=True)
class _Log:
    """The log as one snapshot of the database holds it."""

    entries: list[StoredEntry]
    level0: dict[int, bytes]
    heads: list[SignedHead]
    pending: list[SignedHead]  # signed, still in the outbox on their way to the topic
    prunings: list[SignedPruning]


async def _snapshot(settings: Settings) -> _Log:
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            rows = await conn.fetch(
                f"SELECT leaf_index, leaf_hash, canonical, {', '.join(COLUMNS)}"
                " FROM audit.entries ORDER BY leaf_index"
            )
            nodes = await conn.fetch("SELECT position, hash FROM audit.tree_nodes WHERE level = 0")
            head_rows = await conn.fetch(
                "SELECT size, root, signed_at, key_id, signature FROM audit.tree_heads"
            )
            in_outbox = await conn.fetch(
                "SELECT payload FROM audit.outbox WHERE topic = $1",
                Topics(settings.topic_prefix).tree_heads,
            )
            await conn.execute("SET LOCAL search_path TO audit")
            prunings = await store.prunings(conn)
    finally:
        await conn.close()
    return _Log(
        entries=[
            StoredEntry(
                leaf_index=r["leaf_index"],
                leaf_hash=bytes(r["leaf_hash"]),
                canonical=bytes(r["canonical"]),
                columns={c: r[c] for c in COLUMNS},
            )
            for r in rows
        ],
        level0={r["position"]: bytes(r["hash"]) for r in nodes},
        heads=[
            SignedHead(
                size=r["size"],
                root=bytes(r["root"]),
                signed_at=r["signed_at"],
                key_id=r["key_id"],
                signature=bytes(r["signature"]),
            )
            for r in head_rows
        ],
        pending=[_signed(bytes(r["payload"])) for r in in_outbox],
        prunings=list(prunings),
    )


async def export(settings: Settings, start: datetime, end: datetime) -> list[str]:
    """The entries recorded in [start, end) as JSON lines, each with its inclusion proof
    against the latest signed head, which comes first."""
    conn = await asyncpg.connect(settings.database_url, server_settings={"search_path": "audit"})
    try:
        head = await store.latest_head(conn)
        if head is None:
            raise ExportError("no tree head has been signed yet; wait for the audit service")
        rows = await conn.fetch(
            "SELECT leaf_index, canonical FROM entries WHERE recorded_at >= $1"
            " AND recorded_at < $2 AND leaf_index < $3 ORDER BY leaf_index",
            start,
            end,
            head.size,
        )
        lines = [
            json.dumps(
                {
                    "type": "head",
                    "size": head.size,
                    "root": head.root.hex(),
                    "signed_at": head.signed_at.isoformat(),
                    "key_id": head.key_id,
                    "signature": head.signature.hex(),
                }
            )
        ]
        for row in rows:
            proof = await store.inclusion(conn, row["leaf_index"], head.size)
            lines.append(
                json.dumps(
                    {
                        "type": "entry",
                        "index": row["leaf_index"],
                        "entry": bytes(row["canonical"]).decode(),
                        "proof": [p.hex() for p in proof],
                    }
                )
            )
        return lines
    finally:
        await conn.close()


class ExportError(RuntimeError):
    """Nothing to export against; the message says why."""

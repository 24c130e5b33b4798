"""Verification of the audit log: recompute every leaf, the tree and every signed head,
and say exactly what is wrong. Pure; `vroegsignaal audit verify` feeds it from the
database and from the heads published on the topic."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.audit import merkle
from services.audit.domain import SignedHead, SignedPruning

# Columns kept beside the canonical event for searching; they must say what it says.
COLUMNS = {
    "action": ("action",),
    "outcome": ("outcome",),
    "actor_id": ("actor", "actor_id"),
    "actor_role": ("actor", "role"),
    "on_behalf_of": ("on_behalf_of",),
    "object_type": ("object_type",),
    "object_id": ("object_id",),
    "source_system": ("source_system",),
    "source_instance": ("source_instance",),
    "purpose": ("purpose",),
    "trace_id": ("trace_id",),
}


@dataclass(frozen=True)
class StoredEntry:
    leaf_index: int
    leaf_hash: bytes
    canonical: bytes
    columns: dict[str, Any]


def verify(
    entries: Sequence[StoredEntry],
    level0: dict[int, bytes],
    heads: Sequence[SignedHead],
    published: Sequence[SignedHead],
    public_key: Ed25519PublicKey,
    prunings: Sequence[SignedPruning] = (),
    retention_years: int | None = None,
    *,
    pending: Sequence[SignedHead] = (),
    published_since: Sequence[SignedHead] = (),
) -> list[str]:
    """Every problem found, in words a privacy officer can act on; [] when intact.

    Entries removed by a signed pruning are no problem: their leaf hashes stay in the
    tree's stored nodes, and those must form the root the pruning signed. A head still in
    the audit service's outbox (`pending`) is on its way to the topic, not unpublished,
    and one published since the log was read (`published_since`) is published, but not
    judged against the log: it may cover entries appended after the read."""
    problems: list[str] = []
    pruned, pruned_leaves = _pruned(prunings, level0, public_key, problems)
    if retention_years is not None:
        for p in prunings:
            # A year is at least 365 days: a lawful cutoff lies at least this far back.
            if p.cutoff > p.pruned_at - timedelta(days=365 * retention_years):
                problems.append(
                    f"early pruning: leaves below {p.upto} were removed with cutoff "
                    f"{p.cutoff.date()}, inside the {retention_years}-year retention"
                )
    trusted: list[SignedHead] = []
    published_keys = {
        (h.size, h.root, h.signed_at) for h in [*published, *pending, *published_since]
    }
    for head in [*heads, *(p for p in published if p not in heads)]:
        if not head.verifies(public_key):
            problems.append(
                f"forged tree head: size {head.size} at {head.signed_at.isoformat()} "
                "does not verify with the audit public key"
            )
        else:
            trusted.append(head)
            if (published or published_since) and (
                head.size,
                head.root,
                head.signed_at,
            ) not in published_keys:
                problems.append(
                    f"tree head of size {head.size} at {head.signed_at.isoformat()} is in "
                    "the database but was never published"
                )
    ordered = sorted(entries, key=lambda e: e.leaf_index)
    expected = pruned
    for entry in ordered:
        if entry.leaf_index < pruned:
            continue
        if entry.leaf_index > expected:
            missing = (
                f"{expected}"
                if entry.leaf_index == expected + 1
                else f"{expected} to {entry.leaf_index - 1}"
            )
            problems.append(f"deleted entries: leaf index {missing} is missing")
        expected = entry.leaf_index + 1
    leaves: dict[int, bytes] = dict(pruned_leaves)
    for entry in ordered:
        actual = merkle.leaf_hash(entry.canonical)
        leaves[entry.leaf_index] = actual
        if actual != entry.leaf_hash:
            problems.append(
                f"changed entry: leaf {entry.leaf_index}'s content no longer matches its hash"
            )
            continue
        try:
            event = json.loads(entry.canonical)
        except ValueError:
            problems.append(f"changed entry: leaf {entry.leaf_index} is not valid JSON")
            continue
        for column, path in COLUMNS.items():
            value: Any = event
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            if entry.columns.get(column) != value:
                problems.append(
                    f"changed entry: leaf {entry.leaf_index}'s {column} differs from the "
                    "content it was logged with"
                )
    size = expected
    for head in sorted(trusted, key=lambda h: h.size):
        if head.size > size or any(i not in leaves for i in range(head.size)):
            if head.size > size:
                problems.append(
                    f"truncated log: it holds {size} entries, a signed head covers {head.size}"
                )
            continue
        if merkle.root_of([leaves[i] for i in range(head.size)]) != head.root:
            problems.append(
                f"the log does not match the signed head of size {head.size}: "
                + _where(leaves, level0, head.size)
            )
    return sorted(set(problems), key=problems.index)


def _pruned(
    prunings: Sequence[SignedPruning],
    level0: dict[int, bytes],
    public_key: Ed25519PublicKey,
    problems: list[str],
) -> tuple[int, dict[int, bytes]]:
    """How many leading entries a trusted pruning removed, and their leaf hashes as the
    tree keeps them (checked against the root the pruning signed)."""
    upto = 0
    for pruning in sorted(prunings, key=lambda p: p.upto):
        if not pruning.verifies(public_key):
            problems.append(
                f"forged pruning: the removal of leaves below {pruning.upto} does not verify "
                "with the audit public key; those entries were deleted without authority"
            )
            continue
        stored = [level0.get(i) for i in range(pruning.upto)]
        if (
            any(h is None for h in stored)
            or merkle.root_of([h for h in stored if h is not None]) != pruning.prefix_root
        ):
            problems.append(
                f"the tree's nodes of the pruned leaves below {pruning.upto} no longer form "
                "the root the pruning signed"
            )
            continue
        upto = max(upto, pruning.upto)
    return upto, {i: level0[i] for i in range(upto)}


def _where(leaves: dict[int, bytes], level0: dict[int, bytes], size: int) -> str:
    """Localise a mismatch with the stored leaf nodes (when those were left alone)."""
    differing = [i for i in range(size) if level0.get(i) != leaves[i]]
    if not differing:
        return "the tree's stored nodes were rewritten as well; compare with a backup"
    recomputed = sorted(leaves[i] for i in differing)
    stored = sorted(level0.get(i, b"") for i in differing)
    indexes = ", ".join(str(i) for i in differing[:10])
    if recomputed == stored:
        return f"reordered entries at leaf indexes {indexes}"
    return f"changed entries at leaf indexes {indexes}"


def verify_export(lines: Sequence[str], public_key: Ed25519PublicKey) -> tuple[int, list[str]]:
    """Check an export (a signed head, then entries with inclusion proofs) with nothing
    but the public key. Returns how many entries verified, and every problem."""
    problems: list[str] = []
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except ValueError:
            problems.append(f"line {number}: not JSON")
    if not records or records[0][1].get("type") != "head":
        return 0, [*problems, "the export does not start with a signed tree head"]
    raw = records[0][1]
    try:
        head = SignedHead(
            size=int(raw["size"]),
            root=bytes.fromhex(raw["root"]),
            signed_at=datetime.fromisoformat(raw["signed_at"]),
            key_id=str(raw["key_id"]),
            signature=bytes.fromhex(raw["signature"]),
        )
    except (KeyError, ValueError, TypeError):
        return 0, [*problems, "line 1: the tree head is malformed"]
    if not head.verifies(public_key):
        return 0, [*problems, "the tree head's signature does not verify with this public key"]
    verified = 0
    for number, record in records[1:]:
        try:
            entry = str(record["entry"]).encode()
            index = int(record["index"])
            proof = [bytes.fromhex(p) for p in record["proof"]]
        except (KeyError, ValueError, TypeError):
            problems.append(f"line {number}: malformed entry record")
            continue
        if merkle.verify_inclusion(merkle.leaf_hash(entry), index, head.size, proof, head.root):
            verified += 1
        else:
            problems.append(
                f"line {number}: entry {index} is not in the signed log (altered or not ours)"
            )
    return verified, problems

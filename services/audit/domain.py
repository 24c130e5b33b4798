"""What an audit entry keeps of an AuditEvent, which entries are refused, what a signed
tree head and a signed pruning are, and when an entry is past retention. Pure."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.contracts import AuditEvent

HEAD_CONTEXT = b"vroegsignaal-audit-tree-head/v1"
PRUNING_CONTEXT = b"vroegsignaal-audit-pruning/v1"


@dataclass(frozen=True)
class AuditEntry:
    """One row of the append-only log; `canonical` is the exact event as received."""

    event: AuditEvent
    canonical: bytes
    recorded_at: datetime


def entry_from(event: AuditEvent, recorded_at: datetime) -> AuditEntry:
    # The canonical form is pydantic's deterministic JSON of the validated event, so the
    # tree hashes exactly what every reader sees.
    return AuditEntry(event=event, canonical=event.to_bytes(), recorded_at=recorded_at)


@dataclass(frozen=True)
class Refusal:
    """Why an audit event is not logged, for its dead letter: names no one."""

    code: str
    reason: str


def check_source(event: AuditEvent, written_by: str | None) -> Refusal | None:
    """Only `written_by` may write the audit topic that carried `event` (its Kafka
    principal's ACL): an entry claiming another source is forged or misrouted, and is
    not logged as true."""
    if event.source_system == written_by:
        return None
    return Refusal(
        "audit-source-mismatch",
        f"an entry from {event.source_system!r} came on the audit topic of "
        f"{written_by!r}: each service writes only its own audit topic",
    )


def retention_cutoff(now: datetime, years: int) -> datetime:
    """`years` before `now`: the entries recorded before it are past retention."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:  # 29 February
        return now.replace(year=now.year - years, day=28)


@dataclass(frozen=True)
class SignedHead:
    size: int
    root: bytes
    signed_at: datetime
    key_id: str
    signature: bytes

    @staticmethod
    def message(size: int, root: bytes, signed_at: datetime) -> bytes:
        millis = int(signed_at.timestamp() * 1000)
        return HEAD_CONTEXT + struct.pack(">QQ", size, millis) + root

    @classmethod
    def sign(
        cls, key: Ed25519PrivateKey, key_id: str, size: int, root: bytes, signed_at: datetime
    ) -> SignedHead:
        signed_at = signed_at.replace(microsecond=(signed_at.microsecond // 1000) * 1000)
        signature = key.sign(cls.message(size, root, signed_at))
        return cls(size, root, signed_at, key_id, signature)

    def verifies(self, public_key: Ed25519PublicKey) -> bool:
        try:
            public_key.verify(self.signature, self.message(self.size, self.root, self.signed_at))
        except InvalidSignature:
            return False
        return True


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _to_millis(moment: datetime) -> datetime:
    return moment.replace(microsecond=(moment.microsecond // 1000) * 1000)


@dataclass(frozen=True)
class SignedPruning:
    """The first `upto` entries, all recorded before `cutoff`, were removed; together they
    formed the tree whose root is `prefix_root`. Signed like a tree head."""

    upto: int
    prefix_root: bytes
    cutoff: datetime
    pruned_at: datetime
    key_id: str
    signature: bytes

    @staticmethod
    def message(upto: int, prefix_root: bytes, cutoff: datetime, pruned_at: datetime) -> bytes:
        packed = struct.pack(">QQQ", upto, _millis(cutoff), _millis(pruned_at))
        return PRUNING_CONTEXT + packed + prefix_root

    @classmethod
    def sign(
        cls,
        key: Ed25519PrivateKey,
        key_id: str,
        upto: int,
        prefix_root: bytes,
        cutoff: datetime,
        pruned_at: datetime,
    ) -> SignedPruning:
        cutoff, pruned_at = _to_millis(cutoff), _to_millis(pruned_at)
        signature = key.sign(cls.message(upto, prefix_root, cutoff, pruned_at))
        return cls(upto, prefix_root, cutoff, pruned_at, key_id, signature)

    def verifies(self, public_key: Ed25519PublicKey) -> bool:
        try:
            public_key.verify(
                self.signature,
                self.message(self.upto, self.prefix_root, self.cutoff, self.pruned_at),
            )
        except InvalidSignature:
            return False
        return True

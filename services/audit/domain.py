"""What an audit entry keeps of an AuditEvent. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.contracts import AuditEvent


@dataclass(frozen=True)
class AuditEntry:
    """One row of the append-only log; `canonical` is the exact event as received."""

    event: AuditEvent
    canonical: bytes
    recorded_at: datetime


def entry_from(event: AuditEvent, recorded_at: datetime) -> AuditEntry:
    # The canonical form is pydantic's deterministic JSON of the validated event, so
    # later tamper evidence hashes exactly what every reader sees.
    return AuditEntry(event=event, canonical=event.to_bytes(), recorded_at=recorded_at)

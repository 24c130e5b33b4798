"""The one audit client: every service records its accesses and changes through it.

An audit event is written to the service's outbox in the same transaction as the
change it describes, so a change without its audit event cannot commit.
"""

from __future__ import annotations

from shared.contracts import AuditAction, AuditActor, AuditEvent, AuditOutcome
from shared.db import Conn
from shared.outbox import enqueue
from shared.telemetry import current_trace_id


class AuditTrail:
    def __init__(self, *, service: str, instance: str, topic: str) -> None:
        self._service = service
        self._instance = instance
        self._topic = topic

    async def record(
        self,
        conn: Conn,
        *,
        action: AuditAction,
        object_type: str,
        purpose: str,
        object_id: str | None = None,
        subjects: list[str] | None = None,
        outcome: AuditOutcome = AuditOutcome.SUCCESS,
        actor: AuditActor | None = None,
        on_behalf_of: str | None = None,
    ) -> AuditEvent:
        event = AuditEvent(
            action=action,
            outcome=outcome,
            actor=actor or AuditActor(actor_id=self._service, role="service"),
            on_behalf_of=on_behalf_of,
            subjects=subjects or [],
            object_type=object_type,
            object_id=object_id,
            source_system=self._service,
            source_instance=self._instance,
            purpose=purpose,
            trace_id=current_trace_id(),
        )
        await enqueue(conn, self._topic, event)
        return event

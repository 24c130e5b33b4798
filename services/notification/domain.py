"""Who is told what about a match (BRIEF §3 rules 7-8). Pure: no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from shared.contracts import MatchJoined, MatchKind, MatchRaised, SealedMatch, WorkerContact

# Alerts are identified by (match, recipient, kind), so a redelivered match yields the
# same alert ids and storing them again is a no-op.
ALERT_NAMESPACE = uuid.UUID("5f0b8a4e-3c1d-4e0a-9a57-6d1f2b7c9e10")


@dataclass(frozen=True)
class Alert:
    """That information, never what: whom to contact about a match."""

    alert_id: uuid.UUID
    match_id: uuid.UUID
    kind: MatchKind
    recipient: WorkerContact
    contacts: tuple[WorkerContact, ...]


def alert_id(
    match_id: uuid.UUID, recipient_id: str, kind: MatchKind, occasion: str = "raised"
) -> uuid.UUID:
    return uuid.uuid5(ALERT_NAMESPACE, f"{match_id}/{recipient_id}/{kind.value}/{occasion}")


def alerts_for(match: MatchRaised, contacts: SealedMatch) -> list[Alert]:
    """One alert per distinct worker involved; each lists the other workers to contact.

    `contacts` is the match's opened seal: the workers behind its registrations.
    """
    workers: dict[str, WorkerContact] = {}
    for contact in contacts.contacts:
        workers.setdefault(contact.worker.worker_id, contact.worker)
    return [
        Alert(
            alert_id=alert_id(match.match_id, worker_id, match.kind),
            match_id=match.match_id,
            kind=match.kind,
            recipient=recipient,
            contacts=tuple(w for wid, w in workers.items() if wid != worker_id),
        )
        for worker_id, recipient in workers.items()
    ]


def alerts_for_join(joined: MatchJoined, contacts: SealedMatch) -> list[Alert]:
    """A newcomer learns whom to contact; everyone already involved learns of the newcomer."""
    newcomer_ids = set(joined.newcomers)
    occasion = "joined:" + ",".join(sorted(str(i) for i in newcomer_ids))
    workers: dict[str, WorkerContact] = {}
    newcomers: dict[str, WorkerContact] = {}
    for contact in contacts.contacts:
        workers.setdefault(contact.worker.worker_id, contact.worker)
        if contact.registration_id in newcomer_ids:
            newcomers.setdefault(contact.worker.worker_id, contact.worker)
    alerts = []
    for worker_id, recipient in workers.items():
        if worker_id in newcomers:
            others = tuple(w for wid, w in workers.items() if wid != worker_id)
        else:
            others = tuple(w for wid, w in newcomers.items() if wid != worker_id)
        if others:
            alerts.append(
                Alert(
                    alert_id=alert_id(joined.match_id, worker_id, joined.kind, occasion),
                    match_id=joined.match_id,
                    kind=joined.kind,
                    recipient=recipient,
                    contacts=others,
                )
            )
    return alerts

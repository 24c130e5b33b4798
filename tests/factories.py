"""Synthetic test data: random pseudonyms and fictional workers, never a real person."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

from shared.contracts import (
    AuditAction,
    AuditActor,
    AuditEvent,
    AuditOutcome,
    Category,
    ErasureReviewRequested,
    OrganisationCategory,
    SignalAccepted,
    SignalRegistered,
    WorkerContact,
    month_of,
)

PARTNER_ORGS = {
    "school-de-regenboog": "Basisschool De Regenboog",
    "jgz-voorbeeldrade": "JGZ Voorbeeldrade",
    "huisartsen-centrum": "Huisartsenpraktijk Centrum",
}


def pseudonym() -> str:
    return secrets.token_hex(32)


def worker(worker_id: str) -> WorkerContact:
    return WorkerContact(
        worker_id=worker_id,
        display_name=f"Medewerker {worker_id}",
        email=f"{worker_id}@voorbeeldrade.example",
    )


def signal(
    partner_id: str,
    subject: str,
    *,
    worker_id: str | None = None,
    registered_at: datetime | None = None,
    age_limit_month: str | None = None,
    category: Category = Category.SCHOOLVERZUIM,
) -> SignalRegistered:
    now = registered_at or datetime.now(UTC)
    return SignalRegistered(
        partner_id=partner_id,
        subject=subject,
        organisation=PARTNER_ORGS[partner_id],
        worker=worker(worker_id or f"{partner_id}-1"),
        category=category,
        wijk="WK099903",
        registered_at=now,
        age_limit_month=age_limit_month or month_of(now.date() + timedelta(days=3650)),
    )


def accepted(
    event_id: uuid.UUID,
    subject: str,
    org: str,
    category: OrganisationCategory,
    registered_at: datetime,
    *,
    turns_23: str = "2040-01",
    sealed: str = "v1.AAAA",
) -> SignalAccepted:
    """A signal as intake passes it to matching: its registration id is its event id,
    its partner is `partner-<org>`."""
    return SignalAccepted(
        event_id=event_id,
        signal_id=event_id,
        partner_id=f"partner-{org}",
        subject=subject,
        organisation=org,
        organisation_category=category,
        registered_at=registered_at,
        age_limit_month=turns_23,
        sealed=sealed,
    )


def erasure_review(subject: str, remaining: int = 2) -> ErasureReviewRequested:
    """A school's erasure request that ended its own registration, others' remaining."""
    return ErasureReviewRequested(
        request_id=uuid.uuid4(),
        subject=subject,
        partner_id="school-de-regenboog",
        requested_at=datetime.now(UTC),
        ended=1,
        organisations_remaining=remaining,
    )


def audit_event(
    n: int, *subjects: str, source: str = "notification", at: datetime | None = None
) -> AuditEvent:
    """A worker's read of their inbox, as the notification service logs it."""
    return AuditEvent(
        **({"occurred_at": at} if at is not None else {}),
        action=AuditAction.READ,
        outcome=AuditOutcome.SUCCESS,
        actor=AuditActor(actor_id=f"worker-{n}", role="worker"),
        subjects=list(subjects),
        object_type="alert-list",
        object_id=f"worker-{n}",
        source_system=source,
        source_instance="t1",
        purpose=f"inbox read {n}",
    )

"""Erasing a subject as a whole: the privacy officer's decision, in the audit service.

A partner's erasure request ends only that partner's registrations (matching). Where other
organisations' registrations of the subject remain, matching asks for a review; it is
listed here (the privacy officer's page, `vroegsignaal erasure list`) and approved or
refused there. An approval goes to matching (`erasures.approved`), which then erases the
subject everywhere and shreds its key. Each step is an entry of the log, and the reviews
and decisions themselves are append-only: one decision per request, never changed."""

from __future__ import annotations

import re
import uuid

from services.audit.ports import ErasureReview, UnitOfWork
from shared.contracts import (
    AuditAction,
    AuditActor,
    AuditOutcome,
    ErasureReviewRequested,
    SubjectErasureApproved,
    Topics,
)

REASON_MAX = 500
DIGITS = re.compile(r"\d{8,}")


class DecisionError(ValueError):
    """A decision that cannot be taken; the message says why and what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def review_json(review: ErasureReview) -> dict[str, object]:
    return {
        "request_id": str(review.request_id),
        "subject": review.subject,
        "partner_id": review.partner_id,
        "requested_at": review.requested_at.isoformat(),
        "ended": review.ended,
        "organisations_remaining": review.organisations_remaining,
        "status": (
            "pending" if review.approved is None else "approved" if review.approved else "refused"
        ),
        "decided_by": review.decided_by,
        "reason": review.reason,
        "decided_at": review.decided_at.isoformat() if review.decided_at else None,
    }


async def receive(uow: UnitOfWork, requested: ErasureReviewRequested) -> bool:
    """List a review for the privacy officer (once, however often it is delivered; and
    once per subject and partner while one is pending: a repeated request adds nothing)."""
    if await uow.repo.review(requested.request_id) is not None:
        return False
    if await uow.repo.pending_of(requested.subject, requested.partner_id):
        await uow.record(
            action=AuditAction.CREATE,
            outcome=AuditOutcome.FAILED,
            object_type="erasure-request",
            object_id=str(requested.request_id),
            subjects=[requested.subject],
            purpose="audit: the partner's erasure request repeats one that awaits the "
            "privacy officer; not listed again",
        )
        return False
    added = await uow.repo.add_review(
        ErasureReview(
            request_id=requested.request_id,
            subject=requested.subject,
            partner_id=requested.partner_id,
            requested_at=requested.requested_at,
            ended=requested.ended,
            organisations_remaining=requested.organisations_remaining,
        ),
    )
    if added:
        await uow.record(
            action=AuditAction.CREATE,
            object_type="erasure-request",
            object_id=str(requested.request_id),
            subjects=[requested.subject],
            purpose=f"audit: erasing a subject as a whole awaits the privacy officer "
            f"({requested.organisations_remaining} other organisations keep registrations)",
        )
    return added


async def decide(
    uow: UnitOfWork,
    topics: Topics,
    request_id: uuid.UUID,
    *,
    approve: bool,
    who: AuditActor,
    reason: str,
) -> ErasureReview:
    """Approve or refuse one review, in the caller's unit of work. A refusal needs a
    reason (the partner answers the data subject with it); an approval sends the
    subject's erasure to matching through this service's outbox."""
    reason = reason.strip()
    if not approve and not reason:
        raise DecisionError(400, "a refusal needs a reason: the data subject is told why")
    if len(reason) > REASON_MAX or any(ord(c) < 32 and c not in "\n\t" for c in reason):
        raise DecisionError(400, f"a reason is printable text of at most {REASON_MAX} characters")
    if DIGITS.search(reason) or "@" in reason:
        # Kept next to the subject's pseudonym: never a BSN, a phone number or an address.
        raise DecisionError(400, "a reason names no person: no long numbers, no e-mail addresses")
    review = await uow.repo.review(request_id)
    if review is None:
        raise DecisionError(404, f"no erasure request {request_id}; see the pending list")
    if not await uow.repo.add_decision(request_id, approve, who.actor_id, reason):
        decided = await uow.repo.review(request_id)
        assert decided is not None and decided.approved is not None
        raise DecisionError(
            409,
            f"erasure request {request_id} was already "
            f"{'approved' if decided.approved else 'refused'} by {decided.decided_by}",
        )
    if approve:
        await uow.publish(
            topics.erasures_approved,
            SubjectErasureApproved(
                request_id=request_id, subject=review.subject, approved_by=who.actor_id
            ),
        )
    await uow.record(
        action=AuditAction.DELETE if approve else AuditAction.UPDATE,
        outcome=AuditOutcome.SUCCESS if approve else AuditOutcome.DENIED,
        object_type="erasure-request",
        object_id=str(request_id),
        subjects=[review.subject],
        actor=who,
        on_behalf_of=review.partner_id,
        # The reason stays with the decision, for the privacy officer; the log says what.
        purpose=(
            "audit: the privacy officer approved erasing the subject as a whole"
            if approve
            else "audit: the privacy officer refused erasing the subject as a whole"
        ),
    )
    decided = await uow.repo.review(request_id)
    assert decided is not None
    return decided

"""Matching subscribers: decode -> lock subject -> store -> decide -> outbox -> ack."""

from __future__ import annotations

from datetime import UTC, datetime

from faststream import AckPolicy
from faststream.kafka import KafkaMessage
from prometheus_client import Counter

from services.matching import store
from services.matching.domain import Registration, decide_person_match, expires_at
from shared.contracts import (
    AuditAction,
    MatchRaised,
    SignalAccepted,
)
from shared.db import claim_message
from shared.outbox import enqueue
from shared.service import ServiceRuntime

CONSUMER = "matching"
MIN_ORGANISATIONS = 2

REGISTRATIONS = Counter("vroegsignaal_matching_registrations_total", "Registrations stored")
MATCHES = Counter("vroegsignaal_matching_matches_total", "Matches raised", ["kind"])


def register(runtime: ServiceRuntime) -> None:
    settings = runtime.settings
    dead_letters = runtime.dead_letters

    @runtime.broker.subscriber(
        runtime.topics.accepted,
        group_id=runtime.group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
    )
    async def on_signal_accepted(message: KafkaMessage) -> None:
        signal = await dead_letters.decode(SignalAccepted, message)
        if signal is None:
            return
        registration = Registration(
            registration_id=signal.signal_id,
            subject=signal.subject,
            organisation=signal.organisation,
            worker=signal.worker,
            wijk=signal.wijk,
            registered_at=signal.registered_at,
            expires_at=expires_at(
                signal.registered_at,
                signal.age_cutoff,
                active_days=settings.registration_active_days,
            ),
        )
        now = datetime.now(UTC)
        async with runtime.pool.acquire() as conn, conn.transaction():
            if not await claim_message(conn, CONSUMER, signal.event_id):
                return
            await store.lock_subject(conn, signal.subject)
            if not await store.add_registration(conn, registration):
                return
            REGISTRATIONS.inc()
            await runtime.audit.record(
                conn,
                action=AuditAction.CREATE,
                object_type="registration",
                object_id=str(registration.registration_id),
                subjects=[signal.subject],
                purpose="matching: register concern of a partner organisation",
            )
            decision = decide_person_match(
                await store.active_registrations(conn, signal.subject, now),
                now=now,
                open_match=await store.has_open_person_match(conn, signal.subject),
                min_organisations=MIN_ORGANISATIONS,
                policy_version=settings.policy_version,
            )
            if decision is None:
                return
            await store.add_match(conn, decision)
            await enqueue(
                conn,
                runtime.topics.matches,
                MatchRaised(
                    match_id=decision.match_id,
                    kind=decision.kind,
                    subject=decision.subject,
                    wijk=decision.wijk,
                    participants=list(decision.participants),
                    rule=decision.rule,
                    policy_version=decision.policy_version,
                    raised_at=now,
                ),
            )
            await runtime.audit.record(
                conn,
                action=AuditAction.CREATE,
                object_type="match",
                object_id=str(decision.match_id),
                subjects=[decision.subject],
                purpose=f"matching: {decision.rule} (policy {decision.policy_version})",
            )
        MATCHES.labels(decision.kind.value).inc()

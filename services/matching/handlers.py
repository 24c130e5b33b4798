"""Matching subscribers: decode -> open sealed fields -> lock subject -> store -> decide
-> seal -> outbox -> ack. A subject whose key was shredded is erased, not an error."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from faststream import AckPolicy
from faststream.kafka import KafkaMessage
from prometheus_client import Counter

from services.matching import store
from services.matching.domain import (
    MatchDecision,
    Registration,
    decide_person_match,
    expires_at,
)
from shared.contracts import (
    AuditAction,
    MatchContact,
    MatchParticipant,
    MatchRaised,
    SealedMatch,
    SealedSignal,
    SignalAccepted,
)
from shared.db import claim_message
from shared.keystore import KeyShredded, KeyStore, SealBroken
from shared.outbox import enqueue
from shared.service import ServiceRuntime

CONSUMER = "matching"
MIN_ORGANISATIONS = 2

REGISTRATIONS = Counter("vroegsignaal_matching_registrations_total", "Registrations stored")
MATCHES = Counter("vroegsignaal_matching_matches_total", "Matches raised", ["kind"])
ERASED = Counter(
    "vroegsignaal_matching_erased_total", "Events about subjects whose key was shredded"
)


async def opened(keystore: KeyStore, stored: store.StoredRegistration) -> Registration:
    personal = SealedSignal.model_validate_json(
        await keystore.open_sealed(stored.subject, stored.registration_id.bytes, stored.sealed)
    )
    return Registration(
        registration_id=stored.registration_id,
        subject=stored.subject,
        organisation=stored.organisation,
        worker=personal.worker,
        wijk=personal.wijk,
        registered_at=stored.registered_at,
        expires_at=stored.expires_at,
    )


async def match_raised(keystore: KeyStore, decision: MatchDecision, now: datetime) -> MatchRaised:
    event_id = uuid.uuid4()
    contacts = SealedMatch(
        wijk=decision.wijk,
        contacts=[
            MatchContact(registration_id=p.registration_id, worker=p.worker)
            for p in decision.participants
        ],
    )
    return MatchRaised(
        event_id=event_id,
        match_id=decision.match_id,
        kind=decision.kind,
        subject=decision.subject,
        participants=[
            MatchParticipant(registration_id=p.registration_id, organisation=p.organisation)
            for p in decision.participants
        ],
        sealed=await keystore.seal(
            decision.subject, event_id.bytes, contacts.model_dump_json().encode(), create=False
        ),
        rule=decision.rule,
        policy_version=decision.policy_version,
        raised_at=now,
    )


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
        keystore = runtime.keystore
        stored = store.StoredRegistration(
            registration_id=signal.signal_id,
            subject=signal.subject,
            organisation=signal.organisation,
            registered_at=signal.registered_at,
            expires_at=expires_at(
                signal.registered_at,
                signal.age_cutoff,
                active_days=settings.registration_active_days,
            ),
            sealed=signal.sealed,
        )
        now = datetime.now(UTC)
        try:
            await opened(keystore, stored)
        except KeyShredded:
            ERASED.inc()
            async with runtime.pool.acquire() as conn, conn.transaction():
                await claim_message(conn, CONSUMER, signal.event_id)
            return
        except SealBroken as broken:
            await dead_letters.send(message, "seal-broken", str(broken))
            return
        async with runtime.pool.acquire() as conn, conn.transaction():
            if not await claim_message(conn, CONSUMER, signal.event_id):
                return
            await store.lock_subject(conn, signal.subject)
            if not await store.add_registration(conn, stored):
                return
            REGISTRATIONS.inc()
            await runtime.audit.record(
                conn,
                action=AuditAction.CREATE,
                object_type="registration",
                object_id=str(stored.registration_id),
                subjects=[signal.subject],
                purpose="matching: register concern of a partner organisation",
            )
            active = [
                await opened(keystore, r)
                for r in await store.active_registrations(conn, signal.subject, now)
            ]
            decision = decide_person_match(
                active,
                now=now,
                open_match=await store.has_open_person_match(conn, signal.subject),
                min_organisations=MIN_ORGANISATIONS,
                policy_version=settings.policy_version,
            )
            if decision is None:
                return
            await store.add_match(conn, decision)
            await enqueue(conn, runtime.topics.matches, await match_raised(keystore, decision, now))
            await runtime.audit.record(
                conn,
                action=AuditAction.CREATE,
                object_type="match",
                object_id=str(decision.match_id),
                subjects=[decision.subject],
                purpose=f"matching: {decision.rule} (policy {decision.policy_version})",
            )
        MATCHES.labels(decision.kind.value).inc()

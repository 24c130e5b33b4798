"""Notification subscribers: decode -> alerts -> store + outbox (AlertIssued, audit) -> ack."""

from __future__ import annotations

from faststream import AckPolicy
from faststream.kafka import KafkaMessage
from prometheus_client import Counter

from services.notification import store
from services.notification.domain import alerts_for, alerts_for_join
from shared.contracts import AlertIssued, AuditAction, MatchJoined, MatchRaised, SealedMatch
from shared.db import claim_message
from shared.keystore import KeyShredded, SealBroken
from shared.outbox import EVENT_TYPE_HEADER, enqueue
from shared.service import ServiceRuntime

CONSUMER = "notification"

ALERTS = Counter("vroegsignaal_notification_alerts_total", "Alerts issued", ["kind"])
IGNORED = Counter(
    "vroegsignaal_notification_ignored_total",
    "Lifecycle events not (yet) turned into alerts",
    ["type"],
)
ERASED = Counter(
    "vroegsignaal_notification_erased_total", "Matches about subjects whose key was shredded"
)


def register(runtime: ServiceRuntime) -> None:
    dead_letters = runtime.dead_letters

    @runtime.broker.subscriber(
        runtime.topics.matches,
        group_id=runtime.group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
    )
    async def on_match_raised(message: KafkaMessage) -> None:
        match = await dead_letters.decode(MatchRaised, message)
        if match is None:
            return
        try:
            contacts = SealedMatch.model_validate_json(
                await runtime.keystore.open_sealed(
                    match.subject, match.event_id.bytes, match.sealed
                )
            )
        except KeyShredded:
            ERASED.inc()
            async with runtime.pool.acquire() as conn, conn.transaction():
                await claim_message(conn, CONSUMER, match.event_id)
            return
        except SealBroken as broken:
            await dead_letters.send(message, "seal-broken", str(broken))
            return
        issued = 0
        async with runtime.pool.acquire() as conn, conn.transaction():
            if not await claim_message(conn, CONSUMER, match.event_id):
                return
            for alert in alerts_for(match, contacts):
                if not await store.add_alert(conn, alert):
                    continue
                issued += 1
                await enqueue(
                    conn,
                    runtime.topics.alerts,
                    AlertIssued(
                        alert_id=alert.alert_id,
                        match_id=alert.match_id,
                        kind=alert.kind,
                        recipient=alert.recipient,
                        contacts=list(alert.contacts),
                    ),
                )
                await runtime.audit.record(
                    conn,
                    action=AuditAction.NOTIFY,
                    object_type="alert",
                    object_id=str(alert.alert_id),
                    subjects=[match.subject],
                    on_behalf_of=alert.recipient.worker_id,
                    purpose="notification: tell an involved worker whom to contact",
                )
        ALERTS.labels(match.kind.value).inc(issued)

    @runtime.broker.subscriber(
        runtime.topics.match_lifecycle,
        group_id=runtime.group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
    )
    async def on_match_lifecycle(message: KafkaMessage) -> None:
        record = message.raw_message
        assert not isinstance(record, tuple)
        kind = dict(record.headers or ()).get(EVENT_TYPE_HEADER, b"").decode()
        if kind != MatchJoined.__name__:
            # Dissolution and coordination transfer reach the inbox with the roster work.
            IGNORED.labels(kind or "untyped").inc()
            return
        joined = await dead_letters.decode(MatchJoined, message)
        if joined is None:
            return
        try:
            opened = await runtime.keystore.open_sealed(
                joined.subject, joined.event_id.bytes, joined.sealed
            )
            contacts = SealedMatch.model_validate_json(opened)
        except KeyShredded:
            ERASED.inc()
            async with runtime.pool.acquire() as conn, conn.transaction():
                await claim_message(conn, CONSUMER, joined.event_id)
            return
        except SealBroken as broken:
            await dead_letters.send(message, "seal-broken", str(broken))
            return
        async with runtime.pool.acquire() as conn, conn.transaction():
            if not await claim_message(conn, CONSUMER, joined.event_id):
                return
            issued = 0
            for alert in alerts_for_join(joined, contacts):
                if not await store.add_alert(conn, alert):
                    continue
                issued += 1
                await enqueue(
                    conn,
                    runtime.topics.alerts,
                    AlertIssued(
                        alert_id=alert.alert_id,
                        match_id=alert.match_id,
                        kind=alert.kind,
                        recipient=alert.recipient,
                        contacts=list(alert.contacts),
                    ),
                )
                await runtime.audit.record(
                    conn,
                    action=AuditAction.NOTIFY,
                    object_type="alert",
                    object_id=str(alert.alert_id),
                    subjects=[joined.subject],
                    on_behalf_of=alert.recipient.worker_id,
                    purpose="notification: tell involved workers of a colleague who joined",
                )
        ALERTS.labels(joined.kind.value).inc(issued)

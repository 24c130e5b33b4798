"""Notification subscribers: decode -> alerts -> store + outbox (AlertIssued, audit) -> ack."""

from __future__ import annotations

from collections.abc import Callable

from faststream import AckPolicy
from faststream.kafka import KafkaMessage
from prometheus_client import Counter

from services.notification import store
from services.notification.domain import Alert, alerts_for, alerts_for_join
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


async def issue(
    runtime: ServiceRuntime,
    message: KafkaMessage,
    event: MatchRaised | MatchJoined,
    alerts_of: Callable[[SealedMatch], list[Alert]],
    purpose: str,
) -> None:
    """Open the event's seal, then store, publish and audit each new alert, once.
    A shredded subject is erased, not an error; a broken seal is dead-lettered."""
    try:
        opened = await runtime.keystore.open_sealed(
            event.subject, event.event_id.bytes, event.sealed
        )
        contacts = SealedMatch.model_validate_json(opened)
    except KeyShredded:
        ERASED.inc()
        async with runtime.pool.acquire() as conn, conn.transaction():
            await claim_message(conn, CONSUMER, event.event_id)
        return
    except SealBroken as broken:
        await runtime.dead_letters.send(message, "seal-broken", str(broken))
        return
    issued = 0
    async with runtime.pool.acquire() as conn, conn.transaction():
        if not await claim_message(conn, CONSUMER, event.event_id):
            return
        for alert in alerts_of(contacts):
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
                subjects=[event.subject],
                on_behalf_of=alert.recipient.worker_id,
                purpose=purpose,
            )
    ALERTS.labels(event.kind.value).inc(issued)


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
        if match is not None:
            await issue(
                runtime,
                message,
                match,
                lambda contacts: alerts_for(match, contacts),
                "notification: tell an involved worker whom to contact",
            )

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
            # Dissolution, transfer and earlier-involvement notices reach the inbox with
            # the roster work (issue 5); until then they are counted, not lost on the topic.
            IGNORED.labels(kind or "untyped").inc()
            return
        joined = await dead_letters.decode(MatchJoined, message)
        if joined is not None:
            await issue(
                runtime,
                message,
                joined,
                lambda contacts: alerts_for_join(joined, contacts),
                "notification: tell involved workers of a colleague who joined",
            )

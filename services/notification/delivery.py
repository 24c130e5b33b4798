"""Delivery of alerts over e-mail and webhooks, from the store.

An alert's deliveries are rows written in the alert's own transaction; this loop leases
the due ones, sends them, and records the outcome. A channel that is down loses nothing:
the row waits with exponential backoff and is tried again, and after the last try it is
dead-lettered (reason and the delivery's metadata, never the alert's content).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import asyncpg
from prometheus_client import Counter

from services.notification import store
from services.notification.channels import (
    DeliveryFailed,
    EmailChannel,
    WebhookChannel,
    backoff_seconds,
)
from shared.contracts import AuditAction, AuditOutcome
from shared.db import Conn
from shared.service import ServiceRuntime
from shared.webhook import WebhookTarget

log = logging.getLogger(__name__)

DELIVERIES = Counter(
    "vroegsignaal_notification_deliveries_total", "Delivery attempts", ["channel", "outcome"]
)
# A lease outlasts its batch even when every send times out (10 s each, twice for SMTP's
# connect and data), so two instances never send the same delivery.
BATCH = 5
# Audit object types of deliveries: alert-email, alert-webhook.
DELIVERY_OBJECT = "alert-"
LEASE_SECONDS = 300.0


class Deliverer:
    def __init__(
        self,
        runtime: ServiceRuntime,
        email: EmailChannel | None,
        webhook: WebhookChannel,
        webhooks: Sequence[WebhookTarget],
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.email = email
        self.webhook = webhook
        self.targets = {t.name: t for t in webhooks}

    def body(self, row: asyncpg.Record) -> bytes:
        """What a partner system receives: that there is an alert for one of its workers
        and where to read it. The contacts stay in the inbox."""
        return json.dumps(
            {
                "type": "vroegsignaal.alert",
                "alert_id": str(row["alert_id"]),
                "match_id": str(row["match_id"]) if row["match_id"] else None,
                "kind": row["kind"],
                "occasion": row["occasion"].split(":", 1)[0],
                "recipient_id": row["recipient_id"],
                "issued_at": row["issued_at"].isoformat(),
                "inbox_url": self.settings.inbox_url,
            },
            sort_keys=True,
        ).encode()

    async def send(self, row: asyncpg.Record) -> None:
        delivery_id = str(row["delivery_id"])
        if row["channel"] == "email":
            if self.email is None:
                raise DeliveryFailed("no SMTP relay configured: set VS_SMTP_HOST", retryable=True)
            await self.email.send(row["target"], delivery_id)
            return
        target = self.targets.get(row["target"])
        if target is None:
            raise DeliveryFailed(
                f"webhook {row['target']!r} is no longer configured in the webhooks file",
                retryable=False,
            )
        await self.webhook.send(target, delivery_id, self.body(row))

    async def audit(
        self, conn: Conn, row: asyncpg.Record, outcome: AuditOutcome, what: str
    ) -> None:
        """A delivery left the system (or never will): in the access report of each subject
        the alert is about. The channel and, for a webhook, the partner system's name;
        never an e-mail address."""
        where = "e-mail" if row["channel"] == "email" else f"webhook {row['target']}"
        await self.runtime.audit.record(
            conn,
            action=AuditAction.NOTIFY,
            object_type=f"{DELIVERY_OBJECT}{row['channel']}",
            object_id=str(row["delivery_id"]),
            subjects=list(row["subjects"]),
            on_behalf_of=row["recipient_id"],
            outcome=outcome,
            purpose=f"notification: alert {row['alert_id']} {what} by {where}"[:1000],
        )

    async def run_once(self) -> int:
        """Send what is due; returns how many were sent."""
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            due = await store.claim_deliveries(conn, BATCH, LEASE_SECONDS)
        sent = 0
        for row in due:
            try:
                await self.send(row)
            except DeliveryFailed as failed:
                await self.failed(row, failed)
                continue
            async with self.runtime.pool.acquire() as conn, conn.transaction():
                await store.delivered(conn, row["delivery_id"])
                await self.audit(conn, row, AuditOutcome.SUCCESS, "delivered")
            DELIVERIES.labels(row["channel"], "sent").inc()
            sent += 1
        return sent

    async def failed(self, row: asyncpg.Record, failed: DeliveryFailed) -> None:
        attempts = row["attempts"]
        last = attempts >= self.settings.delivery_max_attempts or not failed.retryable
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            if not last:
                pause = backoff_seconds(attempts, self.settings.delivery_base_seconds)
                await store.retry_later(conn, row["delivery_id"], pause, failed.reason)
                DELIVERIES.labels(row["channel"], "retry").inc()
                return
            await store.give_up(conn, row["delivery_id"], failed.reason)
            await self.audit(conn, row, AuditOutcome.FAILED, "given up")
        DELIVERIES.labels(row["channel"], "dead").inc()
        await self.runtime.dead_letters.send_bytes(
            source=f"delivery:{row['channel']}",
            key=str(row["alert_id"]).encode(),
            value=json.dumps(
                {
                    "delivery_id": str(row["delivery_id"]),
                    "alert_id": str(row["alert_id"]),
                    "channel": row["channel"],
                    "target": row["target"] if row["channel"] == "webhook" else "(e-mail)",
                    "attempts": attempts,
                }
            ).encode(),
            reason_code=f"{row['channel']}-undeliverable",
            reason=f"gave up after {attempts} tries: {failed.reason}",
        )

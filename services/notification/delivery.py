"""Delivery of alerts: digest e-mails and webhooks, from the store.

An alert's webhook deliveries are rows written in the alert's own transaction; its
e-mail waits as a digest item until the composer makes one digest of everything waiting
for its recipient (at most once per policy interval) and one e-mail delivery. This loop
leases the due deliveries, sends them several at a time, and records each outcome. A
channel that is down loses nothing: the row waits with exponential backoff and is tried
again, and after the last try it is dead-lettered (reason and the delivery's metadata,
never the alert's content).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import asyncpg
from prometheus_client import Counter

from services.notification import store
from services.notification.channels import (
    DeliveryFailed,
    EmailChannel,
    WebhookChannel,
    backoff_seconds,
)
from services.notification.domain import digest_due
from shared.contracts import AuditAction, AuditOutcome
from shared.db import Conn, try_lock
from shared.policy import DigestPolicy
from shared.service import ServiceRuntime
from shared.webhook import WebhookTarget

log = logging.getLogger(__name__)

DELIVERIES = Counter(
    "vroegsignaal_notification_deliveries_total", "Delivery attempts", ["channel", "outcome"]
)
# A lease outlasts its batch even when every send times out (10 s each, twice for SMTP's
# connect and data; BATCH / CONCURRENT rounds), so two instances never send the same
# delivery.
BATCH = 50
CONCURRENT = 10
# Audit object types of deliveries: alert-email, alert-webhook.
DELIVERY_OBJECT = "alert-"
LEASE_SECONDS = 300.0
# One composer at a time over all instances; each run composes at most this many digests.
DIGEST_LOCK = "notification:digests"


def before_this_release(_: str) -> tuple[str, object]:
    """The release before took the digests' lock as this number ('vsdg')."""
    return "$1::bigint", 0x76736467


DIGESTS_PER_RUN = 500
DIGESTS = Counter("vroegsignaal_notification_digests_total", "Digest e-mails composed")


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
            if row["digest_id"] is not None:
                await self.email.send(
                    row["target"], delivery_id, row["cases"], row["notices"], row["overdue"]
                )
            else:  # an alert's own e-mail, queued before digests
                cases = 1 if row["match_id"] is not None else 0
                await self.email.send(row["target"], delivery_id, cases, 1 - cases)
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
        its alerts are about. The channel and, for a webhook, the partner system's name;
        never an e-mail address."""
        where = "e-mail" if row["channel"] == "email" else f"webhook {row['target']}"
        if row["digest_id"] is not None:
            told = (
                f"digest {row['digest_id']} ({row['cases']} cases, {row['notices']} notices,"
                f" {row['overdue']} overdue)"
            )
        else:
            told = f"alert {row['alert_id']}"
        await self.runtime.audit.record(
            conn,
            action=AuditAction.NOTIFY,
            object_type=f"{DELIVERY_OBJECT}{row['channel']}",
            object_id=str(row["delivery_id"]),
            subjects=list(row["subjects"]),
            on_behalf_of=row["recipient_id"],
            outcome=outcome,
            purpose=f"notification: {told} {what} by {where}"[:1000],
        )

    async def run_once(self) -> int:
        """Send what is due, CONCURRENT at a time, batch after batch until nothing is
        due; returns how many were sent."""
        sent = 0
        limit = asyncio.Semaphore(CONCURRENT)

        async def one(row: asyncpg.Record) -> bool:
            async with limit:
                return await self.deliver(row)

        while True:
            async with self.runtime.pool.acquire() as conn, conn.transaction():
                due = await store.claim_deliveries(conn, BATCH, LEASE_SECONDS)
            sent += sum(await asyncio.gather(*(one(row) for row in due)))
            if len(due) < BATCH:
                return sent

    async def deliver(self, row: asyncpg.Record) -> bool:
        """Send one delivery and record its outcome; whether it went."""
        try:
            await self.send(row)
        except DeliveryFailed as failed:
            await self.failed(row, failed)
            return False
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            await store.delivered(conn, row["delivery_id"])
            await self.audit(conn, row, AuditOutcome.SUCCESS, "delivered")
        DELIVERIES.labels(row["channel"], "sent").inc()
        return True

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
            key=str(row["alert_id"] or row["digest_id"]).encode(),
            value=json.dumps(
                {
                    "delivery_id": str(row["delivery_id"]),
                    "alert_id": str(row["alert_id"]) if row["alert_id"] else None,
                    "digest_id": str(row["digest_id"]) if row["digest_id"] else None,
                    "channel": row["channel"],
                    "target": row["target"] if row["channel"] == "webhook" else "(e-mail)",
                    "attempts": attempts,
                }
            ).encode(),
            reason_code=f"{row['channel']}-undeliverable",
            reason=f"gave up after {attempts} tries: {failed.reason}",
        )


class DigestComposer:
    """Makes the digests that are due: everything waiting for one worker becomes one
    e-mail, at most once per the policy's interval (sooner for a case new to them)."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], policy: DigestPolicy) -> None:
        self.pool = pool  # the service's pool, once open
        self.policy = policy

    async def run_once(self, now: datetime | None = None) -> int:
        """Compose the digests due now; returns how many. Instances take turns (a
        transaction-scoped advisory lock); one that finds the lock taken does nothing."""
        composed = 0
        async with self.pool().acquire() as conn, conn.transaction():
            if not await try_lock(conn, DIGEST_LOCK, previously=before_this_release):
                return 0
            now = now or datetime.now(UTC)
            for waiting in await store.waiting_digests(conn):
                if composed >= DIGESTS_PER_RUN:
                    break
                if not digest_due(
                    waiting["last_sent"],
                    waiting["new_case"],
                    now,
                    self.policy,
                    unsent=waiting["unsent"],
                ):
                    continue
                if await store.compose_digest(conn, waiting["recipient_id"], waiting["target"]):
                    composed += 1
        DIGESTS.inc(composed)
        return composed

"""Composition root of the notification service: subscribers, delivery and escalation
loops, and the inbox (web page and API behind OIDC bearer tokens)."""

from __future__ import annotations

from pathlib import Path

import httpx
from faststream.asgi import AsgiResponse, get
from faststream.asgi.types import ASGIApp, Scope

from services.notification import handlers, roster, store
from services.notification.api import AlertBus, build_api
from services.notification.channels import EmailChannel, WebhookChannel
from services.notification.delivery import Deliverer, DigestComposer
from shared.auth import TokenVerifier
from shared.contracts import AuditActor
from shared.policy import load_policy
from shared.service import Routes, ServiceRuntime, build_service, json_response
from shared.settings import Settings
from shared.webapp import Combined
from shared.webhook import load_webhooks

NAME = "notification"


def create_app(settings: Settings) -> ASGIApp:
    policy = load_policy(settings.policy_file)
    roster_file = roster.load_roster_file(settings.roster_file)  # fail at start, with the fix
    webhooks = load_webhooks(settings.webhooks_file) if settings.webhooks_file else []
    email = (
        EmailChannel(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_sender,
            settings.inbox_url,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
        )
        if settings.smtp_host
        else None
    )
    verifier = TokenVerifier(
        settings.oidc_issuer, settings.oidc_audience, user_claim=settings.oidc_user_claim
    )
    bus = AlertBus(settings.database_url)

    def register(runtime: ServiceRuntime) -> Routes:
        notifier = handlers.Notifier(runtime, policy, webhooks, email=email is not None)
        handlers.register(runtime, notifier)
        client = httpx.AsyncClient(follow_redirects=False)

        async def seed_roster() -> None:
            async with runtime.pool.acquire() as conn, conn.transaction():
                if await roster.is_empty(conn):
                    await roster.load(
                        conn,
                        roster_file,
                        runtime.audit,
                        AuditActor(actor_id=NAME, role="service"),
                    )

        deliverer = Deliverer(runtime, email, WebhookChannel(client), webhooks)
        composer = DigestComposer(lambda: runtime.pool, policy.notification.digest)

        runtime.on_start(seed_roster)
        runtime.every(settings.digest_check_seconds, "digest composition", composer.run_once)
        runtime.every(settings.delivery_interval_seconds, "alert delivery", deliverer.run_once)
        runtime.every(settings.escalation_interval_seconds, "escalation", notifier.escalate)
        runtime.every(settings.retention_interval_seconds, "inbox retention", notifier.retention)
        runtime.on_close(bus.close)
        runtime.on_close(client.aclose)
        runtime.on_close(verifier.aclose)

        @get(description="Alerts issued, recipients, open matches, deliveries (counts only)")
        async def summary(scope: Scope) -> AsgiResponse:
            async with runtime.pool.acquire() as conn:
                return json_response(await store.counts(conn))

        return [("/alerts/summary", summary)]

    service, runtime = build_service(
        NAME, Path(__file__).parent, settings, register, uses_keystore=True
    )
    return Combined(
        service, build_api(runtime, verifier, bus, policy.aggregates.k), ("/api/", "/inbox")
    )

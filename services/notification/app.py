"""Composition root of the notification service and its alert API."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import Scope

from services.notification import handlers, store
from shared.contracts import AuditAction, AuditActor
from shared.service import Routes, ServiceRuntime, build_service, json_response
from shared.settings import Settings

NAME = "notification"
MAX_ALERTS = 200


def create_app(settings: Settings) -> AsgiFastStream:
    def register(runtime: ServiceRuntime) -> Routes:
        handlers.register(runtime)

        @get(description="The alerts of one worker: ?worker=<worker id>")
        async def alerts(scope: Scope) -> AsgiResponse:
            query = parse_qs(scope.get("query_string", b"").decode())
            worker = (query.get("worker") or [""])[0]
            if not worker:
                return json_response(
                    {"error": "name the worker: /alerts?worker=<id>; there is no free search"},
                    400,
                )
            async with runtime.pool.acquire() as conn, conn.transaction():
                found = await store.alerts_of(conn, worker, MAX_ALERTS)
                await runtime.audit.record(
                    conn,
                    action=AuditAction.READ,
                    object_type="alert-list",
                    object_id=worker,
                    actor=AuditActor(actor_id=worker, role="worker"),
                    purpose="inbox: a worker reads their own alerts",
                )
            return json_response({"worker": worker, "alerts": found})

        @get(description="Alerts issued and workers reached (counts only)")
        async def summary(scope: Scope) -> AsgiResponse:
            async with runtime.pool.acquire() as conn:
                return json_response(await store.counts(conn))

        return [("/alerts", alerts), ("/alerts/summary", summary)]

    app, _ = build_service(NAME, Path(__file__).parent, settings, register, uses_keystore=True)
    return app

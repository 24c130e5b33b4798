"""Composition root of the matching engine."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from faststream.asgi import AsgiResponse, get
from faststream.asgi.types import Scope
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from services.matching import handlers, store, trends
from shared.auth import Principal, Role, TokenVerifier
from shared.contracts import AuditAction
from shared.policy import Policy, load_policy
from shared.service import Routes, ServiceRuntime, build_service, json_response
from shared.settings import Settings
from shared.webapp import Combined, Denied, Guard, actor, require

NAME = "matching"


def create_app(settings: Settings) -> ASGIApp:
    policy = load_policy(settings.policy_file)

    def register(runtime: ServiceRuntime) -> Routes:
        entry = handlers.register(runtime, policy)
        runtime.every(settings.retention_interval_seconds, "retention", entry.retention)
        runtime.every(settings.counts_interval_seconds, "wijk counts", entry.publish_counts)

        @get(description="Registrations and open matches (counts only)")
        async def summary(scope: Scope) -> AsgiResponse:
            async with runtime.pool.acquire() as conn:
                counts = await store.PostgresRepository(conn).counts()
            return json_response({**counts, "policy": policy.version})

        return [("/matches/summary", summary)]

    verifier = TokenVerifier(
        settings.oidc_issuer, settings.oidc_audience, user_claim=settings.oidc_user_claim
    )
    service, runtime = build_service(
        NAME, Path(__file__).parent, settings, register, uses_keystore=True
    )
    runtime.on_close(verifier.aclose)
    return Combined(service, build_trends_api(runtime, verifier, policy), ("/trends",))


def build_trends_api(runtime: ServiceRuntime, verifier: TokenVerifier, policy: Policy) -> Starlette:
    """`GET /trends?wijk=`: wijk x theme counts of distinct children, cells under k left
    out, for the team leads and the regie role only (a login, each read audited): even
    aggregates of a small wijk tell something about its families."""
    guarded = Guard(runtime, verifier)

    async def wijk_trends(request: Request, principal: Principal) -> Response:
        require(principal, Role.TEAM_LEAD, Role.REGIE)
        wijk = request.query_params.get("wijk", "")
        if not re.fullmatch(r"WK\d{6}", wijk):
            raise Denied(400, "name a wijk: /trends?wijk=WK079701")
        now = trends.window_of(datetime.now(UTC).date())
        weeks = [now, *trends.previous_windows(now, policy.aggregates.baseline_windows)]
        async with runtime.pool.acquire() as conn, conn.transaction():
            found = await store.PostgresRepository(conn).cells(wijk, weeks)
            await runtime.audit.record(
                conn,
                action=AuditAction.READ,
                object_type="wijk-trends",
                object_id=wijk,
                actor=actor(principal),
                purpose="matching: a team lead or the regie role reads a wijk's theme counts",
            )
        return JSONResponse(
            {
                "wijk": wijk,
                "k": policy.aggregates.k,
                # Cells under k are left out entirely, not shown as empty.
                "cells": [
                    {
                        "theme": c.theme,
                        "window": c.window,
                        "children": shown,
                        "trend": c.trend,
                    }
                    for c in found
                    if (shown := trends.shown(c.children, policy)) is not None
                ],
            }
        )

    return Starlette(routes=[Route("/trends", guarded(wijk_trends))])

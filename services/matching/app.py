"""Composition root of the matching engine."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import Scope

from services.matching import handlers, store, trends
from shared.policy import load_policy
from shared.service import Routes, ServiceRuntime, build_service, json_response
from shared.settings import Settings

NAME = "matching"


def create_app(settings: Settings) -> AsgiFastStream:
    policy = load_policy(settings.policy_file)

    def register(runtime: ServiceRuntime) -> Routes:
        matcher = handlers.register(runtime, policy)
        runtime.every(settings.retention_interval_seconds, "retention", matcher.retention)
        runtime.every(
            settings.counts_interval_seconds,
            "wijk counts",
            lambda: handlers.publish_counts(runtime, policy),
        )

        @get(description="Registrations and open matches (counts only)")
        async def summary(scope: Scope) -> AsgiResponse:
            async with runtime.pool.acquire() as conn:
                return json_response({**await store.counts(conn), "policy": policy.version})

        @get(description="Wijk x theme counts of distinct children; cells under k suppressed")
        async def wijk_trends(scope: Scope) -> AsgiResponse:
            query = parse_qs(scope.get("query_string", b"").decode())
            wijk = (query.get("wijk") or [""])[0]
            if not re.fullmatch(r"WK\d{6}", wijk):
                return json_response({"error": "name a wijk: /trends?wijk=WK079701"}, 400)
            now = trends.window_of(datetime.now(UTC).date())
            weeks = [now, *trends.previous_windows(now, policy.aggregates.baseline_windows)]
            async with runtime.pool.acquire() as conn:
                found = await store.cells(conn, wijk, weeks)
            return json_response(
                {
                    "wijk": wijk,
                    "k": policy.aggregates.k,
                    # Cells under k are left out entirely, not shown as empty.
                    "cells": [
                        {
                            "theme": c["theme"],
                            "window": c["window_id"],
                            "children": shown,
                            "trend": bool(c["trend"]),
                        }
                        for c in found
                        if (shown := trends.shown(int(str(c["children"])), policy)) is not None
                    ],
                }
            )

        return [("/matches/summary", summary), ("/trends", wijk_trends)]

    app, _ = build_service(NAME, Path(__file__).parent, settings, register, uses_keystore=True)
    return app

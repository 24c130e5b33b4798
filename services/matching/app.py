"""Composition root of the matching engine."""

from __future__ import annotations

from pathlib import Path

from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import Scope

from services.matching import handlers, store
from shared.service import Routes, ServiceRuntime, build_service, json_response
from shared.settings import Settings

NAME = "matching"


def create_app(settings: Settings) -> AsgiFastStream:
    def register(runtime: ServiceRuntime) -> Routes:
        handlers.register(runtime)

        @get(description="Registrations and open matches (counts only)")
        async def summary(scope: Scope) -> AsgiResponse:
            async with runtime.pool.acquire() as conn:
                return json_response(await store.counts(conn))

        return [("/matches/summary", summary)]

    app, _ = build_service(NAME, Path(__file__).parent, settings, register, uses_keystore=True)
    return app

"""Composition root of the matching engine."""

from __future__ import annotations

from pathlib import Path

from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import Scope

from services.matching import handlers, store
from services.matching.policy import Policy, PolicyError
from shared.service import Routes, ServiceRuntime, build_service, json_response
from shared.settings import Settings

NAME = "matching"


def load_policy(settings: Settings) -> Policy:
    path = settings.policy_file
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyError(
            f"cannot read the policy file {path}: {exc}; set VS_POLICY_FILE"
        ) from None
    return Policy.parse(text, source=str(path))


def create_app(settings: Settings) -> AsgiFastStream:
    policy = load_policy(settings)

    def register(runtime: ServiceRuntime) -> Routes:
        matcher = handlers.register(runtime, policy)
        runtime.background.append(
            lambda: handlers.retention_loop(matcher, settings.retention_interval_seconds)
        )

        @get(description="Registrations and open matches (counts only)")
        async def summary(scope: Scope) -> AsgiResponse:
            async with runtime.pool.acquire() as conn:
                return json_response({**await store.counts(conn), "policy": policy.version})

        return [("/matches/summary", summary)]

    app, _ = build_service(NAME, Path(__file__).parent, settings, register, uses_keystore=True)
    return app

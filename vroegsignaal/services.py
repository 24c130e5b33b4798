"""The four services by name: how to build each and where it listens."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from faststream.asgi.types import ASGIApp

from services.audit import app as audit_app
from services.intake import app as intake_app
from services.matching import app as matching_app
from services.notification import app as notification_app
from services.pseudonymiser import app as pseudonymiser_app
from shared.settings import Settings


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    create_app: Callable[[Settings], ASGIApp]
    port_of: Callable[[Settings], int]
    directory: Path
    pages: tuple[str, ...]


SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec(
            "pseudonymiser",
            pseudonymiser_app.create_app,
            lambda s: s.pseudonymiser_port,
            Path(pseudonymiser_app.__file__).parent,
            ("/v1/keys",),
        ),
        ServiceSpec(
            "intake",
            intake_app.create_app,
            lambda s: s.intake_port,
            Path(intake_app.__file__).parent,
            ("/signals/summary",),
        ),
        ServiceSpec(
            "matching",
            matching_app.create_app,
            lambda s: s.matching_port,
            Path(matching_app.__file__).parent,
            ("/matches/summary",),
        ),
        ServiceSpec(
            "notification",
            notification_app.create_app,
            lambda s: s.notification_port,
            Path(notification_app.__file__).parent,
            ("/alerts/summary",),
        ),
        ServiceSpec(
            "audit",
            audit_app.create_app,
            lambda s: s.audit_port,
            Path(audit_app.__file__).parent,
            ("/audit/summary",),
        ),
    )
}


def serve(name: str, settings: Settings) -> None:
    """Run one service in the foreground until SIGTERM/SIGINT, then stop gracefully."""
    import uvicorn

    spec = SERVICES[name]
    app = spec.create_app(settings)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=spec.port_of(settings),
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=int(settings.graceful_timeout_seconds),
    )

"""What the services' web pages and APIs share: bearer-token authentication, role checks,
audited refusals, the page login script, and mounting a Starlette app beside FastStream.

Every refusal of an authenticated caller writes an audit event naming the route (never
the raw path, which a caller could fill with anything); requests without a valid token
are refused (401) and counted, not logged one by one, so nobody can flood the
append-only log without credentials.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.auth import AuthError, Principal, Role, TokenVerifier
from shared.contracts import AuditAction, AuditActor, AuditOutcome
from shared.service import ServiceRuntime

# oidc.js: the login (authorization code + PKCE) and API calls of every page.
STATIC = Path(__file__).parent / "static"

UNAUTHENTICATED = Counter(
    "vroegsignaal_web_unauthenticated_total",
    "Web requests without a valid token",
    ["service", "status"],
)

Handler = Callable[[Request, Principal], Awaitable[Response]]


class Denied(Exception):
    """A request the caller may not make: the status and a message naming the reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def actor(principal: Principal) -> AuditActor:
    role = next((r.value for r in Role if principal.has(r)), "none")
    return AuditActor(actor_id=principal.user_id, role=role, organisation=principal.organisation)


def require(principal: Principal, *roles: Role) -> None:
    if not any(principal.has(r) for r in roles):
        raise Denied(
            403,
            f"this needs the role {' or '.join(r.value for r in roles)}; "
            "ask your administrator for access if you need it",
        )


def parse_uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Denied(404, f"no such {what}") from None


def logged_path(request: Request) -> str:
    """The request's route with its ids, for the append-only log. An id that is no UUID is
    left out."""
    route = request.scope.get("route")
    template = str(getattr(route, "path", "(unknown route)"))
    for name, value in request.path_params.items():
        try:
            shown = str(uuid.UUID(str(value)))
        except ValueError:
            shown = "<malformed>"
        template = template.replace("{" + name + "}", shown)
    return template


def unauthenticated(exc: AuthError) -> JSONResponse:
    """The answer to a request without a valid token: why, and (401) how to authenticate."""
    return JSONResponse(
        {"error": str(exc)},
        exc.status,
        headers={"WWW-Authenticate": exc.www_authenticate} if exc.status == 401 else None,
    )


class Guard:
    """Wraps an API handler: authenticate the bearer token, run the handler, and audit a
    refusal (Denied) in the service's own outbox."""

    def __init__(self, runtime: ServiceRuntime, verifier: TokenVerifier) -> None:
        self.runtime = runtime
        self.verifier = verifier

    def __call__(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                principal = await self.verifier.authenticate(request.scope)
            except AuthError as exc:
                UNAUTHENTICATED.labels(self.runtime.name, str(exc.status)).inc()
                return unauthenticated(exc)
            try:
                return await handler(request, principal)
            except Denied as denied:
                await self.audit_refusal(principal, request, denied)
                return JSONResponse({"error": denied.message}, denied.status)

        return run

    async def audit_refusal(self, principal: Principal, request: Request, denied: Denied) -> None:
        async with self.runtime.pool.acquire() as conn, conn.transaction():
            await self.runtime.audit.record(
                conn,
                action=AuditAction.READ if request.method == "GET" else AuditAction.UPDATE,
                outcome=AuditOutcome.DENIED,
                object_type=f"{self.runtime.name}-request",
                object_id=f"{request.method} {logged_path(request)}",
                actor=actor(principal),
                purpose=f"{self.runtime.name}: refused ({denied.status})",
            )


class Combined:
    """A service's ASGI app: a Starlette app for some path prefixes, FastStream's app for
    the rest (health, metrics, summaries) and for the lifespan."""

    def __init__(self, service: Any, web: Any, prefixes: Sequence[str]) -> None:
        self.service = service
        self.web = web
        self.prefixes = tuple(prefixes)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefixes):
            await self.web(scope, receive, send)
        else:
            await self.service(scope, receive, send)


def iso_moment(raw: str | None, name: str) -> datetime | None:
    """A query's ISO date or date-time, with its time zone; None when not given."""
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise Denied(400, f"'{name}' must be an ISO date or date-time") from None
    if value.tzinfo is None:
        raise Denied(400, f"'{name}' needs a time zone, e.g. 2026-11-01T00:00:00+01:00")
    return value

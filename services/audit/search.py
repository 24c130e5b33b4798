"""The privacy officer's view of the audit log: search by subject pseudonym, user,
organisation, action and period, the erasure requests that await a decision, and the
workplace of services/audit/workplace.py (integrity, access reports, exports), behind
OIDC bearer tokens (role privacy_officer only). Every search, list and decision is itself
audited, in the same log, through this service's outbox."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from services.audit import erasures, store, workplace
from shared.auth import Principal, Role, TokenVerifier
from shared.contracts import AuditAction
from shared.service import ServiceRuntime
from shared.webapp import STATIC, Denied, Guard, actor, iso_moment, parse_uuid, require

WEB = Path(__file__).parent / "web"
MAX_PAGE = 500
PAGE = 200  # erasure requests listed at once
ACTIONS = sorted(a.value for a in AuditAction)
USER_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
# A run of eight or nine digits could be a BSN: the search is logged, so it is refused.
DIGITS = re.compile(r"\d{8,}")


def criteria(request: Request) -> store.Search:
    """The search from the query string; a clear refusal for anything malformed."""
    q = request.query_params
    unknown = set(q) - {"subject", "user", "organisation", "action", "from", "to", "after",
                        "limit"}  # fmt: skip
    if unknown:
        raise Denied(400, f"unknown search fields: {', '.join(sorted(unknown))}")

    def moment(name: str) -> datetime | None:
        return iso_moment(q.get(name), name)

    user = q.get("user") or None
    if user is not None and (not USER_ID.fullmatch(user) or DIGITS.search(user)):
        raise Denied(400, "a user is a user or service id: lowercase letters, digits, . _ -")
    organisation = q.get("organisation") or None
    if organisation is not None and (
        len(organisation) > 120 or DIGITS.search(organisation) or "@" in organisation
    ):
        # What is searched for is logged: it must never carry a BSN or an address.
        raise Denied(400, "an organisation is its name as registered, without long numbers")
    subject = q.get("subject") or None
    if subject is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", subject):
        raise Denied(400, "a subject pseudonym is 64 lowercase hex characters")
    action = q.get("action") or None
    if action is not None and action not in ACTIONS:
        raise Denied(400, f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    try:
        after = int(q.get("after", "-1"))
        limit = min(int(q.get("limit", "100")), MAX_PAGE)
    except ValueError:
        raise Denied(400, "'after' and 'limit' are whole numbers") from None
    search = store.Search(
        subject=subject.lower() if subject else None,
        user=user,
        organisation=organisation,
        action=action,
        start=moment("from"),
        end=moment("to"),
        after=after,
        limit=max(limit, 1),
    )
    if search.is_empty():
        raise Denied(400, "name at least one of subject, user, organisation, action, from or to")
    return search


def described(s: store.Search) -> str:
    """The search as the log records it (the subject goes in the subjects field)."""
    parts = [
        f"{name}={value.isoformat() if isinstance(value, datetime) else value}"
        for name, value in (
            ("user", s.user),
            ("organisation", s.organisation),
            ("action", s.action),
            ("from", s.start),
            ("to", s.end),
        )
        if value is not None
    ]
    return ("subject, " if s.subject else "") + ", ".join(parts)


def build_web(
    runtime: ServiceRuntime, verifier: TokenVerifier, public_key: Ed25519PublicKey
) -> Starlette:
    settings = runtime.settings
    guarded = Guard(runtime, verifier)
    units = store.units(lambda: runtime.pool, runtime.audit)

    async def config(request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": settings.oidc_issuer,
                "client_id": settings.oidc_client_id,
                "scope": settings.oidc_scope,
            }
        )

    async def me(request: Request, principal: Principal) -> Response:
        return JSONResponse(
            {
                "user_id": principal.user_id,
                "name": principal.name,
                "roles": sorted(r.value for r in principal.roles),
            }
        )

    async def search(request: Request, principal: Principal) -> Response:
        require(principal, Role.PRIVACY_OFFICER)
        wanted = criteria(request)
        async with runtime.pool.acquire() as conn, conn.transaction():
            found = await store.search(conn, wanted)
            await runtime.audit.record(
                conn,
                action=AuditAction.SEARCH,
                object_type="audit-log",
                object_id=described(wanted)[:500],
                # Whose entries the officer saw: each of them, also when searching by a
                # user or an organisation (their access reports show the search).
                subjects=sorted(
                    {str(x) for f in found for x in f["event"].get("subjects") or ()}
                    | ({wanted.subject} if wanted.subject else set())
                ),
                actor=actor(principal),
                purpose=f"audit: the privacy officer searches the log ({len(found)} found)",
            )
        more = len(found) == wanted.limit
        return JSONResponse(
            {
                "entries": found,
                "next_after": found[-1]["leaf_index"] if more else None,
            }
        )

    async def erasure_list(request: Request, principal: Principal) -> Response:
        require(principal, Role.PRIVACY_OFFICER)
        status = request.query_params.get("status", "pending")
        if status not in ("pending", "decided"):
            raise Denied(400, "status is pending or decided")
        async with runtime.pool.acquire() as conn, conn.transaction():
            found = await store.reviews(conn, pending=status == "pending", limit=PAGE + 1)
            more, found = len(found) > PAGE, found[:PAGE]
            await runtime.audit.record(
                conn,
                action=AuditAction.READ,
                object_type="erasure-request",
                object_id=f"{status} list",
                subjects=sorted({r.subject for r in found}),
                actor=actor(principal),
                purpose=f"audit: the privacy officer lists {status} erasure requests "
                f"({len(found)} found)",
            )
        # The oldest first: a page never hides the request waiting longest.
        return JSONResponse({"requests": [erasures.review_json(r) for r in found], "more": more})

    async def erasure_decision(request: Request, principal: Principal) -> Response:
        require(principal, Role.PRIVACY_OFFICER)
        request_id = parse_uuid(request.path_params["request_id"], "erasure request")
        try:
            body = await request.json()
        except ValueError:
            raise Denied(400, 'send JSON: {"approve": true|false, "reason": "..."}') from None
        if (
            not isinstance(body, dict)
            or set(body) - {"approve", "reason"}
            or not isinstance(body.get("approve"), bool)
            or not isinstance(body.get("reason", ""), str)
        ):
            raise Denied(400, 'send JSON: {"approve": true|false, "reason": "..."}')
        try:
            async with units() as uow:
                decided = await erasures.decide(
                    uow,
                    runtime.topics,
                    request_id,
                    approve=body["approve"],
                    who=actor(principal),
                    reason=body.get("reason", ""),
                )
        except erasures.DecisionError as exc:
            raise Denied(exc.status, str(exc)) from None
        return JSONResponse(erasures.review_json(decided))

    async def home(request: Request) -> Response:
        return RedirectResponse("/audit/ui/")

    return Starlette(
        routes=[
            Route("/audit/ui/config", config),
            Route("/audit/v1/me", guarded(me)),
            Route("/audit/v1/search", guarded(search)),
            Route("/audit/v1/erasures", guarded(erasure_list)),
            Route(
                "/audit/v1/erasures/{request_id}/decision",
                guarded(erasure_decision),
                methods=["POST"],
            ),
            *workplace.routes(runtime, public_key, guarded),
            Route("/audit/ui", home),
            Mount("/audit/ui/lib", StaticFiles(directory=STATIC)),
            Mount("/audit/ui", StaticFiles(directory=WEB, html=True)),
        ]
    )

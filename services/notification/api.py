"""The inbox's HTTP API and web page, behind OIDC bearer tokens.

Rule 11: no free search. A worker sees their own alerts and tasks and the matches they are
party to (registering worker or coordinator); a team lead sees what is past its period in
their teams (an overview, not an alert per match) and the wijk trends of their teams; the
regie role sees per match whether contact happened, and whom to chase where it did not in
time, nothing more. Privacy officers and partner administrators have no business here. Every read of
alerts or of a match, and every refusal of an authenticated caller, writes an audit event;
requests without a valid token are refused (401) and counted, not logged per request, so
that nobody can flood the append-only log without credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from services.notification import roster, store
from services.notification.trend_chart import chart_svg
from services.notification.yours import attach, open_one, open_yours
from shared.auth import Principal, Role, TokenVerifier
from shared.contracts import AuditAction
from shared.service import ServiceRuntime
from shared.webapp import STATIC, Denied, Guard, actor, parse_uuid, require

WEB = Path(__file__).parent / "web"
MAX_ALERTS = 200
CASES_PER_PAGE = 25
RECEIVERS = (Role.WORKER, Role.TEAM_LEAD, Role.REGIE)
OVERVIEW_LIMIT = 500  # the newest first; the rest after these are followed up


class AlertBus:
    """One LISTEN connection per instance; each open inbox stream waits on its own queue.
    The notification carries only the recipient's id: the stream tells the page to reload
    the list, and that read goes through the audited endpoint."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._conn: asyncpg.Connection | None = None
        self._queues: dict[str, set[asyncio.Queue[str]]] = {}
        self._lock = asyncio.Lock()

    async def _ensure(self) -> None:
        async with self._lock:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self._database_url)
                await self._conn.add_listener(store.ALERT_CHANNEL, self._heard)
                self._conn.add_termination_listener(self._lost)

    def _lost(self, _conn: object) -> None:
        """The LISTEN connection dropped: every open page reloads (it may have missed
        something), and the next subscription connects again."""
        self._conn = None
        for queues in self._queues.values():
            for queue in queues:
                queue.put_nowait("")

    def _heard(self, _conn: object, _pid: int, _channel: str, recipient: object) -> None:
        for queue in self._queues.get(str(recipient), ()):
            queue.put_nowait(str(recipient))

    @contextlib.asynccontextmanager
    async def subscribe(self, user_id: str) -> AsyncIterator[asyncio.Queue[str]]:
        await self._ensure()
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._queues.setdefault(user_id, set()).add(queue)
        try:
            yield queue
        finally:
            self._queues[user_id].discard(queue)
            if not self._queues[user_id]:
                del self._queues[user_id]

    async def close(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()


def build_api(runtime: ServiceRuntime, verifier: TokenVerifier, bus: AlertBus, k: int) -> Starlette:
    settings = runtime.settings
    endpoint = Guard(runtime, verifier)

    async def config(request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": settings.oidc_issuer,
                "client_id": settings.oidc_client_id,
                "audience": settings.oidc_audience,
                "scope": settings.oidc_scope,
            }
        )

    async def me(request: Request, principal: Principal) -> Response:
        return JSONResponse(
            {
                "user_id": principal.user_id,
                "name": principal.name,
                "roles": sorted(r.value for r in principal.roles),
                "organisation": principal.organisation,
            }
        )

    async def alerts(request: Request, principal: Principal) -> Response:
        require(principal, *RECEIVERS)
        async with runtime.pool.acquire() as conn, conn.transaction():
            notices = request.query_params.get("notices") == "only"
            found, subjects = await store.alerts_of(
                conn, principal.user_id, principal.organisation, MAX_ALERTS, notices_only=notices
            )
            attach(found, await own_registrations(conn, found, principal))
            await runtime.audit.record(
                conn,
                action=AuditAction.READ,
                object_type="alert-list",
                object_id=principal.user_id,
                # Whose matches the list reveals, for the data subjects' access reports.
                subjects=subjects,
                actor=actor(principal),
                purpose="inbox: a user reads their own alerts",
            )
        return JSONResponse({"user_id": principal.user_id, "alerts": found})

    async def cases(request: Request, principal: Principal) -> Response:
        """The recipient's cases, a page at a time: `?filter=open|waiting|closed|all`
        (waiting: an unread alert or an open task of theirs) and `?page=1..`."""
        require(principal, *RECEIVERS)
        which = request.query_params.get("filter", "open")
        if which not in store.CASE_FILTERS:
            raise Denied(400, f"filter is one of {', '.join(store.CASE_FILTERS)}")
        try:
            page = int(request.query_params.get("page", "1"))
        except ValueError:
            page = 0
        if not 1 <= page <= 10_000:
            raise Denied(400, "page is a number from 1")
        # One snapshot: the page and the filters' totals are of the same moment (read
        # apart, a match told in between showed in a total and not on its page).
        async with runtime.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            found, totals, subjects = await store.cases_of(
                conn,
                principal.user_id,
                principal.organisation,
                which,
                CASES_PER_PAGE,
                (page - 1) * CASES_PER_PAGE,
            )
            attach(found, await own_registrations(conn, found, principal))
            await runtime.audit.record(
                conn,
                action=AuditAction.READ,
                object_type="case-list",
                object_id=principal.user_id,
                subjects=subjects,
                actor=actor(principal),
                purpose=f"inbox: a user reads their cases ({which}, page {page})",
            )
        return JSONResponse(
            {
                "filter": which,
                "page": page,
                "per_page": CASES_PER_PAGE,
                "totals": totals,
                "cases": found,
            }
        )

    async def case(request: Request, principal: Principal) -> Response:
        """One case: what the recipient was told about it, oldest first."""
        require(principal, *RECEIVERS)
        match_id = parse_uuid(request.path_params["match_id"], "case in your inbox")
        async with runtime.pool.acquire() as conn, conn.transaction():
            timeline = await store.case_timeline(
                conn, match_id, principal.user_id, principal.organisation
            )
            if not timeline:
                raise Denied(404, "no such case in your inbox")
            found = await store.match(conn, match_id)
            yours = await own_registrations(conn, [{"match_id": str(match_id)}], principal)
            await runtime.audit.record(
                conn,
                action=AuditAction.READ,
                object_type="case",
                object_id=str(match_id),
                subjects=await store.subjects_told(
                    conn, principal.user_id, principal.organisation, [match_id]
                ),
                actor=actor(principal),
                purpose="inbox: a user reads the timeline of their case",
            )
        return JSONResponse(
            {
                "match_id": str(match_id),
                "kind": found["kind"] if found else timeline[-1]["kind"],
                "state": found["state"] if found else "closed",
                "contact_made": bool(found and found["contact_made_at"]),
                "timeline": timeline,
                "your_registrations": yours.get(match_id, []),
            }
        )

    async def acknowledge_case(request: Request, principal: Principal) -> Response:
        """Acknowledge everything unread in one case at once."""
        require(principal, *RECEIVERS)
        match_id = parse_uuid(request.path_params["match_id"], "case in your inbox")
        async with runtime.pool.acquire() as conn, conn.transaction():
            if not await store.case_timeline(
                conn, match_id, principal.user_id, principal.organisation
            ):
                raise Denied(404, "no such case in your inbox")
            done = await store.acknowledge_case(
                conn, match_id, principal.user_id, principal.organisation, datetime.now(UTC)
            )
            if done:
                await runtime.audit.record(
                    conn,
                    action=AuditAction.UPDATE,
                    object_type="case",
                    object_id=str(match_id),
                    subjects=await store.subjects_told(
                        conn, principal.user_id, principal.organisation, [match_id]
                    ),
                    actor=actor(principal),
                    purpose=f"inbox: case acknowledged ({done} alerts)",
                )
        return JSONResponse({"match_id": str(match_id), "acknowledged": done})

    async def stream(request: Request, principal: Principal) -> Response:
        require(principal, *RECEIVERS)

        async def events() -> AsyncIterator[dict[str, str]]:
            async with bus.subscribe(principal.user_id) as queue:
                yield {"event": "ready", "data": "{}"}
                while True:
                    # The stream lives no longer than the token it was opened with: the
                    # page then reconnects, and an expired token has to log in again.
                    left = (
                        None if principal.expires_at is None else principal.expires_at - time.time()
                    )
                    if left is not None and left <= 0:
                        return
                    try:
                        heard = await asyncio.wait_for(queue.get(), timeout=left)
                    except TimeoutError:
                        return
                    if heard == "":
                        # The bus lost its connection: reload, then end this stream so
                        # the page opens a new one on a new connection.
                        yield {"event": "alerts", "data": "{}"}
                        return
                    while not queue.empty():  # a burst of alerts is one reload
                        queue.get_nowait()
                    yield {"event": "alerts", "data": "{}"}

        return EventSourceResponse(events(), ping=15)

    async def acknowledge(request: Request, principal: Principal) -> Response:
        require(principal, *RECEIVERS)
        alert_id = parse_uuid(request.path_params["alert_id"], "alert in your inbox")
        async with runtime.pool.acquire() as conn, conn.transaction():
            mine, subjects = await store.owned_alert(
                conn, alert_id, principal.user_id, principal.organisation
            )
            if not mine:
                raise Denied(404, "no such alert in your inbox")
            changed = await store.acknowledge(conn, alert_id, datetime.now(UTC))
            if changed:
                await runtime.audit.record(
                    conn,
                    action=AuditAction.UPDATE,
                    object_type="alert",
                    object_id=str(alert_id),
                    subjects=subjects,
                    actor=actor(principal),
                    purpose="inbox: alert acknowledged",
                )
        return JSONResponse({"alert_id": str(alert_id), "acknowledged": True})

    async def own_registrations(
        conn: Any, items: list[dict[str, Any]], principal: Principal
    ) -> dict[uuid.UUID, list[dict[str, Any]]]:
        """The principal's own registrations in the matches of `items`, as their
        organisation's workers see them (nobody else's)."""
        match_ids = [uuid.UUID(i["match_id"]) for i in items if i.get("match_id")]
        rows = await store.yours_in(conn, match_ids, principal.user_id, principal.organisation)
        return await open_yours(runtime.keystore, rows)

    async def party_match(conn: Any, request: Request, principal: Principal) -> asyncpg.Record:
        require(principal, Role.WORKER)
        match_id = parse_uuid(request.path_params["match_id"], "match you are party to")
        found = await store.match(conn, match_id)
        if found is None or not await store.is_party(
            conn, match_id, principal.user_id, principal.organisation
        ):
            raise Denied(404, "no such match among the matches you are party to")
        return found

    async def match(request: Request, principal: Principal) -> Response:
        async with runtime.pool.acquire() as conn, conn.transaction():
            found = await party_match(conn, request, principal)
            parties = await store.parties(conn, found["match_id"])
            coordinator = (
                await roster.person(conn, found["coordinator_id"])
                if found["coordinator_id"]
                else None
            )
            made = await store.contacts_made(conn, found["match_id"])
            yours = await own_registrations(conn, [{"match_id": str(found["match_id"])}], principal)
            await runtime.audit.record(
                conn,
                action=AuditAction.READ,
                object_type="match",
                object_id=str(found["match_id"]),
                # Every party of the match is shown: it discloses each child's.
                subjects=list((await store.about(conn, found["match_id"])).subjects),
                actor=actor(principal),
                purpose="inbox: a party views the contacts of a match",
            )
        return JSONResponse(
            {
                "match_id": str(found["match_id"]),
                "kind": found["kind"],
                "state": found["state"],
                "raised_at": found["raised_at"].isoformat(),
                "family_note": "This concerns another child in the same family."
                if found["kind"] == "family"
                else None,
                "parties": [
                    {**w.model_dump(mode="json"), "organisation": org} for w, org in parties
                ],
                "coordinator": coordinator.model_dump(mode="json") if coordinator else None,
                "contacts_made": made,
                "your_registrations": yours.get(found["match_id"], []),
            }
        )

    async def contact_made(request: Request, principal: Principal) -> Response:
        require(principal, Role.WORKER)
        # The body is read before a connection is taken, and judged after the party check.
        try:
            body = await request.json()
            with_worker: str | None = str(body["with_worker"])
        except (ValueError, KeyError, TypeError):
            with_worker = None
        async with runtime.pool.acquire() as conn, conn.transaction():
            found = await party_match(conn, request, principal)
            if with_worker is None:
                raise Denied(
                    400, 'send JSON {"with_worker": "<worker id>"}: whom you made contact with'
                )
            if with_worker == principal.user_id or not await store.has_party(
                conn, found["match_id"], with_worker
            ):
                raise Denied(400, f"{with_worker!r} is not another party of this match")
            if await store.record_contact(
                conn, found["match_id"], principal.user_id, with_worker, datetime.now(UTC)
            ):
                await runtime.audit.record(
                    conn,
                    action=AuditAction.UPDATE,
                    object_type="match",
                    object_id=str(found["match_id"]),
                    subjects=list((await store.about(conn, found["match_id"])).subjects),
                    actor=actor(principal),
                    purpose="inbox: contact made (afgestemd)",
                )
        return JSONResponse({"match_id": str(found["match_id"]), "contact_made": True})

    async def tasks(request: Request, principal: Principal) -> Response:
        require(principal, Role.WORKER)
        async with runtime.pool.acquire() as conn, conn.transaction():
            found = await store.tasks_of(conn, principal.user_id, principal.organisation)
            for t in found:
                # The task's own registration: the one it asks the worker to inform about.
                sealed, registration_id = t.pop("yours"), t.pop("registration_id")
                t["your_registration"] = (
                    await open_one(runtime.keystore, t["subject"], registration_id, sealed)
                    if sealed and t["subject"]
                    else None
                )
            # Whose tasks they are stays here: the worker is shown no pseudonym.
            subjects = sorted({str(s) for t in found if (s := t.pop("subject"))})
            await runtime.audit.record(
                conn,
                action=AuditAction.READ,
                object_type="inform-task-list",
                object_id=principal.user_id,
                # Each task is about the child of the worker's own registration.
                subjects=subjects,
                actor=actor(principal),
                purpose="inbox: a worker reads their tasks to inform families",
            )
        return JSONResponse({"tasks": found})

    async def task_done(request: Request, principal: Principal) -> Response:
        require(principal, Role.WORKER)
        task_id = parse_uuid(request.path_params["task_id"], "task of yours")
        async with runtime.pool.acquire() as conn, conn.transaction():
            match_id = await store.own_task(
                conn, task_id, principal.user_id, principal.organisation
            )
            if match_id is None:
                raise Denied(404, "no such task of yours")
            if await store.complete_task(conn, task_id, datetime.now(UTC)):
                await runtime.audit.record(
                    conn,
                    action=AuditAction.UPDATE,
                    object_type="inform-task",
                    object_id=str(task_id),
                    subjects=await store.task_subjects(conn, task_id),
                    actor=actor(principal),
                    purpose="inbox: the family was informed (rule 10)",
                )
        return JSONResponse({"task_id": str(task_id), "done": True})

    async def regie_matches(request: Request, principal: Principal) -> Response:
        require(principal, Role.REGIE)
        async with runtime.pool.acquire() as conn, conn.transaction():
            found = await store.regie_overview(conn, 500)
            await runtime.audit.record(
                conn,
                action=AuditAction.READ,
                object_type="match-overview",
                # The overview shows each match's state and wijk: its children's.
                subjects=await store.about_many(conn, [uuid.UUID(m["match_id"]) for m in found]),
                actor=actor(principal),
                purpose="inbox: the regie role follows whether contact happened",
            )
        return JSONResponse({"matches": found})

    async def registrations(request: Request, principal: Principal) -> Response:
        """Which of the worker's own registrations are part of a case, by the number their
        organisation's producer or desk gave it: the desk shows its workers this."""
        require(principal, Role.WORKER)
        async with runtime.pool.acquire() as conn, conn.transaction():
            rows = await store.yours_all(conn, principal.user_id, principal.organisation)
            found: dict[str, dict[str, str]] = {}
            for r in rows:
                opened = await open_one(
                    runtime.keystore, r["subject"], r["registration_id"], r["yours"]
                )
                number = (opened or {}).get("number")
                # In an open case before a closed one, when it is in several.
                if number and (number not in found or r["state"] == "open"):
                    found[number] = {
                        "number": number,
                        "match_id": str(r["match_id"]),
                        "state": r["state"],
                    }
            await runtime.audit.record(
                conn,
                action=AuditAction.READ,
                object_type="own-registrations",
                object_id=principal.user_id,
                subjects=sorted({r["subject"] for r in rows}),
                actor=actor(principal),
                purpose="desk: a worker reads which of their registrations are part of a case",
            )
        return JSONResponse({"registrations": list(found.values())})

    async def overdue(request: Request, principal: Principal) -> Response:
        """What is past its period, to follow up: a team lead's teams' alerts nobody
        acknowledged in time and who did not; the regie role's the same of teams without
        a lead, and the matches without contact in time with whom to chase."""
        require(principal, Role.TEAM_LEAD, Role.REGIE)
        late: list[dict[str, Any]] = []
        quiet: list[dict[str, Any]] = []
        disclosed: set[str] = set()
        async with runtime.pool.acquire() as conn, conn.transaction():
            if principal.has(Role.TEAM_LEAD):
                teams = await roster.teams_led_by(conn, principal.user_id)
                late, _, disclosed = await store.overdue_overview(conn, teams, OVERVIEW_LIMIT)
            if principal.has(Role.REGIE):
                of_regie, quiet, more = await store.overdue_overview(conn, None, OVERVIEW_LIMIT)
                late = sorted([*late, *of_regie], key=lambda i: i["escalated_at"], reverse=True)
                disclosed |= more
            await runtime.audit.record(
                conn,
                action=AuditAction.READ,
                object_type="overdue-overview",
                # Each late alert's own children; each quiet match's (whom to chase).
                subjects=sorted(disclosed),
                actor=actor(principal),
                purpose="inbox: follow up what is past its period "
                f"({len(late)} alerts, {len(quiet)} matches)",
            )
        return JSONResponse(
            {"late": late[:OVERVIEW_LIMIT], "quiet": quiet, "limit": OVERVIEW_LIMIT}
        )

    async def trend_wijken(conn: Any, principal: Principal) -> list[str]:
        """The wijken whose counts a user sees: all for the regie role, a team lead's
        teams' wijken."""
        require(principal, Role.TEAM_LEAD, Role.REGIE)
        if principal.has(Role.REGIE):
            return await roster.wijken_of(conn, None)
        return await roster.wijken_of(conn, await roster.teams_led_by(conn, principal.user_id))

    async def wijk_trends(request: Request, principal: Principal) -> Response:
        async with runtime.pool.acquire() as conn:
            wijken = await trend_wijken(conn, principal)
            cells = await store.trend_cells(conn, wijken)
            # Aggregates of at least k children: about no one, but a read to account for.
            await runtime.audit.record(
                conn,
                action=AuditAction.READ,
                object_type="wijk-trends",
                object_id=",".join(wijken)[:200] or None,
                actor=actor(principal),
                purpose="inbox: wijk x theme counts for collective prevention",
            )
        return JSONResponse({"wijken": wijken, "cells": cells, "k": k})

    async def trend_chart(request: Request, principal: Principal) -> Response:
        """One wijk's counts as a chart (SVG, drawn here: no script, no CDN)."""
        wijk = request.query_params.get("wijk", "")
        language = request.query_params.get("lang", "nl")
        async with runtime.pool.acquire() as conn:
            if wijk not in await trend_wijken(conn, principal):
                raise Denied(404, "no such wijk among the wijken whose counts you see")
            cells = await store.trend_cells(conn, [wijk])
            await runtime.audit.record(
                conn,
                action=AuditAction.READ,
                object_type="wijk-trends",
                object_id=wijk,
                actor=actor(principal),
                purpose="inbox: wijk x theme counts for collective prevention (chart)",
            )
        return Response(
            chart_svg(cells, language if language in ("nl", "en") else "nl"),
            media_type="image/svg+xml",
            headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
        )

    async def home(request: Request) -> Response:
        return RedirectResponse("/inbox/")

    return Starlette(
        routes=[
            Route("/api/config", config),
            Route("/api/me", endpoint(me)),
            Route("/api/alerts", endpoint(alerts)),
            Route("/api/alerts/stream", endpoint(stream)),
            Route("/api/cases", endpoint(cases)),
            Route("/api/overdue", endpoint(overdue)),
            Route("/api/registrations", endpoint(registrations)),
            Route("/api/cases/{match_id}", endpoint(case)),
            Route(
                "/api/cases/{match_id}/acknowledge", endpoint(acknowledge_case), methods=["POST"]
            ),
            Route("/api/alerts/{alert_id}/acknowledge", endpoint(acknowledge), methods=["POST"]),
            Route("/api/matches/{match_id}", endpoint(match)),
            Route("/api/matches/{match_id}/contacts", endpoint(contact_made), methods=["POST"]),
            Route("/api/tasks", endpoint(tasks)),
            Route("/api/tasks/{task_id}/done", endpoint(task_done), methods=["POST"]),
            Route("/api/regie/matches", endpoint(regie_matches)),
            Route("/api/trends", endpoint(wijk_trends)),
            Route("/api/trends/chart", endpoint(trend_chart)),
            Route("/inbox", home),
            Mount("/inbox/lib", StaticFiles(directory=STATIC)),
            Mount("/inbox", StaticFiles(directory=WEB, html=True)),
        ]
    )

"""The inbox API's authorisation matrix on the running services (rule 11): every role
against every endpoint, party and non-party, each answer's exact status; tokens that must
not pass; and the audit log holding every refusal and every read of a match.

One match is raised through real matching (two accepted signals in wijk WK099901, team
jgt-noord); the whole matrix then runs against one start of the services, collecting every
failing case so that one run names them all.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.notification.domain import alert_id
from shared.auth import Role
from shared.contracts import (
    MatchKind,
    OrganisationCategory,
    SealedSignal,
    SignalAccepted,
    Topics,
)
from shared.keystore import KeyStore
from shared.settings import Settings
from tests.conftest import eventually, token_for
from tests.factories import pseudonym, worker
from tests.kafka_tools import login
from vroegsignaal.dev.stack.issuer import DemoUser, mint_token

pytestmark = pytest.mark.e2e

WIJK = "WK099901"  # served by team jgt-noord
NOORD_WIJKEN = ["WK099901", "WK099902", "WK099903", "WK099904"]
ALL_WIJKEN = sorted([*NOORD_WIJKEN, "WK099905", "WK099906", "WK099907", "WK099908"])
A, B = "mw-school-a", "mw-jgz-b"  # the registering workers, minted for this test
ORG = {A: "Basisschool De Regenboog", B: "JGZ Voorbeeldrade"}
NAMESAKE = "namesake"  # A's worker id, at another organisation
X = "jgt-zuid-1"
REGIE = "regie-voorbeeldrade"
LEAD = "teamlead-noord"
FG = "fg-voorbeeldrade"
ADMIN = "partner-admin"
NOBODY = "zonder-rol"  # a valid token that carries no known role
NOT_A_UUID = "not-a-uuid"
UNKNOWN = "00000000-0000-4000-8000-000000000000"

Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    status: int
    headers: dict[str, str]
    actor: str | None = None  # whose token: the audit log names them on a refusal
    role: str = "none"
    body: dict[str, Any] | bytes | None = None
    check: Check | None = None


@dataclass
class World:
    """The data of the run: one match, its parties, and everyone's token."""

    settings: Settings
    subject: str
    match_id: uuid.UUID
    coordinator: str
    registrations: dict[str, uuid.UUID]
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    def alert_of(self, user: str) -> str:
        return str(alert_id(self.match_id, user, MatchKind.PERSON, "raised"))

    def task_of(self, user: str) -> str:
        return str(uuid.uuid5(self.match_id, f"inform/{self.registrations[user]}"))


# --- setting up ---------------------------------------------------------------------


async def raise_match(settings: Settings, subject: str) -> dict[str, uuid.UUID]:
    """Two organisations' accepted signals about one child, as intake publishes them;
    matching raises the match. The registration id of each worker."""
    topics = Topics(settings.topic_prefix)
    keystore = await KeyStore.open(settings)
    producer = AIOKafkaProducer(**login(settings))
    await producer.start()
    registrations: dict[str, uuid.UUID] = {}
    try:
        for worker_id, partner, organisation, category in (
            (A, "school-de-regenboog", "Basisschool De Regenboog", OrganisationCategory.ONDERWIJS),
            (B, "jgz-voorbeeldrade", "JGZ Voorbeeldrade", OrganisationCategory.JGZ),
        ):
            event_id = uuid.uuid4()
            registrations[worker_id] = event_id
            personal = SealedSignal(worker=worker(worker_id), wijk=WIJK)
            event = SignalAccepted(
                event_id=event_id,
                signal_id=event_id,
                partner_id=partner,
                subject=subject,
                organisation=organisation,
                organisation_category=category,
                registered_at=datetime.now(UTC),
                age_limit_month="2040-01",
                sealed=await keystore.seal(
                    subject, event_id.bytes, personal.model_dump_json().encode(), create=True
                ),
            )
            await producer.send_and_wait(topics.accepted, event.to_bytes(), key=subject.encode())
    finally:
        await producer.stop()
        await keystore.close()
    return registrations


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def minted(settings: Settings, user: DemoUser, **changes: Any) -> dict[str, str]:
    assert settings.issuer_key_file is not None
    issuer = changes.pop("issuer", settings.oidc_issuer)
    audience = changes.pop("audience", settings.oidc_audience)
    return bearer(mint_token(settings.issuer_key_file, issuer, audience, user, **changes))


async def prepare(settings: Settings, notification: str, http: httpx.AsyncClient) -> World:
    subject = pseudonym()
    registrations = await raise_match(settings, subject)
    a_token = bearer(token_for(settings, A, Role.WORKER, organisation=ORG[A]))

    async def a_has_an_alert() -> dict[str, Any] | None:
        response = await http.get(f"{notification}/api/alerts", headers=a_token)
        alerts = response.json()["alerts"] if response.status_code == 200 else []
        return alerts[0] if alerts else None

    alert = await eventually(a_has_an_alert, timeout=60)
    coordinator = alert["coordinator"]["worker_id"]
    assert coordinator in {"jgt-noord-1", "jgt-noord-2"}, alert
    world = World(settings, subject, uuid.UUID(alert["match_id"]), coordinator, registrations)
    world.tokens = {
        A: a_token,
        B: bearer(token_for(settings, B, Role.WORKER, organisation=ORG[B])),
        NAMESAKE: bearer(token_for(settings, A, Role.WORKER, organisation="Andere School")),
        coordinator: bearer(token_for(settings, coordinator)),
        **{u: bearer(token_for(settings, u)) for u in (X, REGIE, LEAD, FG, ADMIN)},
        NOBODY: minted(
            settings, DemoUser(NOBODY, "Zonder Rol", f"{NOBODY}@voorbeeldrade.example", (), "-")
        ),
    }
    return world


# --- checking answers ---------------------------------------------------------------


def same(what: str, got: object, want: object) -> str | None:
    return None if got == want else f"{what}: got {got!r}, want {want!r}"


def me_is(user: str, roles: list[str]) -> Check:
    return lambda body: same("me", (body["user_id"], body["roles"]), (user, roles))


def alert_ids(want: list[str]) -> Check:
    return lambda body: same("alert ids", sorted(a["alert_id"] for a in body["alerts"]), want)


def case_ids(want: list[str]) -> Check:
    return lambda body: same("case ids", sorted(c["match_id"] for c in body["cases"]), want)


def timeline_of(world: World, user: str) -> Check:
    """A case's timeline holds what this user was told, and only that."""
    return lambda body: same(
        "timeline", [a["alert_id"] for a in body["timeline"]], [world.alert_of(user)]
    )


def task_ids(want: list[str]) -> Check:
    return lambda body: same("task ids", sorted(t["task_id"] for t in body["tasks"]), want)


def match_shows(world: World) -> Check:
    def check(body: Any) -> str | None:
        return same(
            "match",
            (
                body["match_id"],
                sorted(p["worker_id"] for p in body["parties"]),
                body["coordinator"]["worker_id"],
            ),
            (str(world.match_id), sorted([A, B]), world.coordinator),
        )

    return check


def regie_sees_only_whether_contact_happened(world: World) -> Check:
    def check(body: Any) -> str | None:
        mine = [m for m in body["matches"] if m["match_id"] == str(world.match_id)]
        fields = ["match_id", "kind", "wijk", "team", "state", "raised_at"]
        fields += ["contact_made", "coordinated"]
        return same(
            "regie overview of the match",
            [(sorted(m), m["wijk"], m["team"]) for m in mine],
            [(sorted(fields), WIJK, "jgt-noord")],
        )

    return check


OVERVIEW_EMPTY = {"late": [], "quiet": [], "limit": 500}


def wijken(want: list[str]) -> Check:
    return lambda body: same("wijken", body["wijken"], want)


# --- the matrix ---------------------------------------------------------------------


def matrix(world: World) -> list[Case]:
    m, c = world.match_id, world.coordinator
    people = {  # who -> (label, first role as the audit log names it)
        A: ("A (registrant)", "worker"),
        B: ("B (registrant)", "worker"),
        c: ("C (coordinator)", "worker"),
        X: ("X (unrelated worker)", "worker"),
        REGIE: ("regie", "regie"),
        LEAD: ("team lead", "team_lead"),
        FG: ("privacy officer", "privacy_officer"),
        ADMIN: ("partner admin", "partner_admin"),
        NOBODY: ("no role", "none"),
    }
    everyone = list(people)
    receivers = [A, B, c, X, REGIE, LEAD]
    workers = [A, B, c, X]
    cases: list[Case] = []

    def case(
        user: str,
        method: str,
        path: str,
        status: int,
        *,
        shown: str | None = None,
        note: str = "",
        body: dict[str, Any] | bytes | None = None,
        check: Check | None = None,
    ) -> None:
        label, role = people[user]
        name = f"{method} {shown or path} as {label}" + (f" {note}" if note else "")
        cases.append(Case(name, method, path, status, world.tokens[user], user, role, body, check))

    def each(
        method: str,
        path: str,
        shown: str,
        expected: dict[str, int],
        body: dict[str, Any] | None = None,
        checks: dict[str, Check] | None = None,
    ) -> None:
        for user in everyone:
            check = (checks or {}).get(user)
            case(user, method, path, expected[user], shown=shown, body=body, check=check)

    def only(allowed: list[str], status: int = 200, otherwise: int = 403) -> dict[str, int]:
        return {u: status if u in allowed else otherwise for u in everyone}

    roles = {u: [people[u][1]] if u != NOBODY else [] for u in everyone}
    each(
        "GET",
        "/api/me",
        "/api/me",
        only(everyone),
        checks={u: me_is(u, roles[u]) for u in everyone},
    )
    each(
        "GET",
        "/api/alerts",
        "/api/alerts",
        only(receivers),
        checks={
            A: alert_ids([world.alert_of(A)]),
            B: alert_ids([world.alert_of(B)]),
            c: alert_ids([world.alert_of(c)]),
            # The regie role follows coordinated matches in its overview, not as alerts.
            REGIE: alert_ids([]),
            X: alert_ids([]),
            LEAD: alert_ids([]),
        },
    )
    each("GET", "/api/alerts/stream", "/api/alerts/stream", only(receivers))
    each(
        "GET",
        "/api/cases?filter=all",
        "/api/cases",
        only(receivers),
        checks={
            **{u: case_ids([str(m)]) for u in (A, B, c)},
            **{u: case_ids([]) for u in (X, REGIE, LEAD)},
        },
    )
    each(
        "GET",
        f"/api/cases/{m}",
        "/api/cases/{M}",
        {**only(receivers), X: 404, LEAD: 404, REGIE: 404},
        checks={u: timeline_of(world, u) for u in (A, B, c)},
    )
    each(
        "POST",
        f"/api/cases/{m}/acknowledge",
        "/api/cases/{M}/acknowledge",
        {**only(receivers), X: 404, LEAD: 404, REGIE: 404},
    )
    case(A, "GET", "/api/cases?filter=everything", 400, note="(unknown filter)")
    case(A, "GET", "/api/cases?page=0", 400, note="(page 0)")
    case(A, "GET", "/api/cases?page=x", 400, note="(page not a number)")
    each(
        "POST",
        f"/api/alerts/{world.alert_of(A)}/acknowledge",
        "/api/alerts/{A's alert}/acknowledge",
        {**only(receivers, otherwise=403), **{u: 404 for u in receivers if u != A}},
    )
    each(
        "GET",
        f"/api/matches/{m}",
        "/api/matches/{M}",
        {**only([A, B, c]), X: 404},
        checks={u: match_shows(world) for u in (A, B, c)},
    )
    contacts = f"/api/matches/{m}/contacts"
    shown = "/api/matches/{M}/contacts"
    for user, other, status in (
        (A, B, 200),
        (B, A, 200),
        (A, c, 200),
        (c, A, 200),
        (A, A, 400),
        (c, c, 400),
        (A, X, 400),
        (A, REGIE, 400),
        (X, A, 404),
        (REGIE, A, 403),
        (LEAD, A, 403),
        (FG, A, 403),
        (ADMIN, A, 403),
        (NOBODY, A, 403),
    ):
        with_whom = "self" if other == user else people[other][0]
        note = f"with {with_whom}"
        case(user, "POST", contacts, status, shown=shown, note=note, body={"with_worker": other})
    case(A, "POST", contacts, 400, shown=shown, note="with a body that is no JSON", body=b"{")
    case(A, "POST", contacts, 400, shown=shown, note="without with_worker", body={"who": B})
    each(
        "GET",
        "/api/tasks",
        "/api/tasks",
        only(workers),
        checks={
            A: task_ids([world.task_of(A)]),
            B: task_ids([world.task_of(B)]),
            c: task_ids([]),
            X: task_ids([]),
        },
    )
    each(
        "POST",
        f"/api/tasks/{world.task_of(A)}/done",
        "/api/tasks/{A's task}/done",
        {**only(workers), B: 404, c: 404, X: 404},
    )
    case(A, "POST", f"/api/tasks/{world.task_of(B)}/done", 404, shown="/api/tasks/{B's task}/done")
    each(
        "GET",
        "/api/regie/matches",
        "/api/regie/matches",
        only([REGIE]),
        checks={REGIE: regie_sees_only_whether_contact_happened(world)},
    )
    each(
        "GET",
        "/api/overdue",
        "/api/overdue",
        only([LEAD, REGIE]),
        # Nothing is past its period in this world; a team lead never sees quiet matches.
        checks={
            LEAD: lambda body: same("a team lead's overview", body, OVERVIEW_EMPTY),
            REGIE: lambda body: same("the regie role's overview", body, OVERVIEW_EMPTY),
        },
    )
    each(
        "GET",
        "/api/trends",
        "/api/trends",
        only([LEAD, REGIE]),
        checks={LEAD: wijken(NOORD_WIJKEN), REGIE: wijken(ALL_WIJKEN)},
    )

    # A path id that is no UUID, or one that names nothing, is "not found", never a 500.
    for path, note in (
        (f"/api/alerts/{NOT_A_UUID}/acknowledge", "malformed alert id"),
        (f"/api/alerts/{UNKNOWN}/acknowledge", "unknown alert id"),
        (f"/api/matches/{NOT_A_UUID}", "malformed match id"),
        (f"/api/matches/{UNKNOWN}", "unknown match id"),
        (f"/api/tasks/{NOT_A_UUID}/done", "malformed task id"),
        (f"/api/tasks/{UNKNOWN}/done", "unknown task id"),
        (f"/api/cases/{NOT_A_UUID}", "malformed case id"),
        (f"/api/cases/{UNKNOWN}", "unknown case id"),
        (f"/api/cases/{UNKNOWN}/acknowledge", "unknown case id"),
    ):
        get = path.startswith("/api/matches") or (
            path.startswith("/api/cases") and not path.endswith("/acknowledge")
        )
        method = "GET" if get else "POST"
        case(A, method, path, 404, note=f"({note})")
    for path in (f"/api/matches/{NOT_A_UUID}/contacts", f"/api/matches/{UNKNOWN}/contacts"):
        case(A, "POST", path, 404, body={"with_worker": B})
    case(REGIE, "POST", f"/api/alerts/{NOT_A_UUID}/acknowledge", 404)

    # A's namesake at another organisation is someone else: none of A's alerts, tasks or
    # matches (a partner cannot make another organisation's worker a party by the id).
    namesake = world.tokens[NAMESAKE]
    for method, path, status, check in (
        ("GET", "/api/alerts", 200, no_alerts),
        ("GET", "/api/tasks", 200, no_tasks),
        ("GET", f"/api/matches/{m}", 404, None),
        ("GET", "/api/cases?filter=all", 200, no_cases),
        ("GET", f"/api/cases/{m}", 404, None),
        ("POST", f"/api/cases/{m}/acknowledge", 404, None),
        ("POST", f"/api/alerts/{world.alert_of(A)}/acknowledge", 404, None),
    ):
        cases.append(
            Case(
                f"{method} {path} as A's namesake at another organisation",
                method,
                path,
                status,
                namesake,
                A,
                "worker",
                None,
                check,
            )
        )
    return cases


def no_alerts(body: Any) -> str | None:
    return None if body.get("alerts") == [] else f"expected no alerts, got {body!r}"


def no_cases(body: Any) -> str | None:
    return None if body.get("cases") == [] else f"expected no cases, got {body!r}"


def no_tasks(body: Any) -> str | None:
    return None if body.get("tasks") == [] else f"expected no tasks, got {body!r}"


def unauthenticated(world: World) -> list[Case]:
    """Every /api endpoint but /api/config refuses a request without a valid token."""
    settings = world.settings
    user_a = DemoUser(A, A, f"{A}@voorbeeldrade.example", (Role.WORKER,), "-")
    bad = {
        "without a token": {},
        "with an expired token": minted(settings, user_a, lifetime=60, now=int(time.time()) - 3600),
        "with a token for another audience": minted(settings, user_a, audience="elders"),
    }
    endpoints = [
        ("GET", "/api/me"),
        ("GET", "/api/alerts"),
        ("GET", "/api/alerts/stream"),
        ("POST", f"/api/alerts/{world.alert_of(A)}/acknowledge"),
        ("GET", f"/api/matches/{world.match_id}"),
        ("POST", f"/api/matches/{world.match_id}/contacts"),
        ("GET", "/api/cases"),
        ("GET", f"/api/cases/{world.match_id}"),
        ("POST", f"/api/cases/{world.match_id}/acknowledge"),
        ("GET", "/api/tasks"),
        ("POST", f"/api/tasks/{world.task_of(A)}/done"),
        ("GET", "/api/regie/matches"),
        ("GET", "/api/trends"),
    ]
    cases = [
        Case(f"{method} {path} {how}", method, path, 401, headers, body={"with_worker": B})
        for method, path in endpoints
        for how, headers in bad.items()
    ]
    more = {
        "with a token of another issuer": minted(settings, user_a, issuer="http://elsewhere"),
        "with a token that is no JWT": bearer("not.a.jwt"),
        "with the Basic scheme": {"Authorization": "Basic YTpi"},
    }
    cases += [Case(f"GET /api/me {how}", "GET", "/api/me", 401, h) for how, h in more.items()]
    return cases


async def ask(http: httpx.AsyncClient, base: str, case: Case) -> tuple[int, httpx.Headers, Any]:
    """Status, headers and JSON body; an event stream is only opened and closed."""
    sent: dict[str, Any] = {"content": case.body} if isinstance(case.body, bytes) else {}
    if isinstance(case.body, dict):
        sent = {"json": case.body}
    async with http.stream(case.method, base + case.path, headers=case.headers, **sent) as r:
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            return r.status_code, r.headers, None
        await r.aread()
        try:
            return r.status_code, r.headers, r.json()
        except ValueError:
            return r.status_code, r.headers, r.text


def judge(case: Case, status: int, headers: httpx.Headers, body: Any) -> str | None:
    if status != case.status:
        return f"status {status}, want {case.status} ({str(body)[:200]})"
    if status == 401 and not headers.get("www-authenticate", "").startswith("Bearer"):
        return f"401 without a Bearer challenge: {headers.get('www-authenticate')!r}"
    if case.path == "/api/alerts/stream" and status == 200:
        kind = headers.get("content-type", "")
        return None if kind.startswith("text/event-stream") else f"content-type {kind!r}"
    if status in (400, 403, 404) and not (isinstance(body, dict) and body.get("error")):
        return f"a refusal without an error message: {body!r}"
    return case.check(body) if case.check and status == 200 else None


# --- the audit log ------------------------------------------------------------------


def refusal(case: Case) -> tuple[str, str, str, str, str]:
    action = "read" if case.method == "GET" else "update"
    assert case.actor is not None
    purpose = f"notification: refused ({case.status})"
    # The log names the route with its ids; what a caller typed instead of an id is left
    # out, so nobody can write a BSN or a name into the append-only log through a URL.
    # Nor the query: a search box is no way into the log either.
    logged = case.path.replace("/not-a-uuid", "/<malformed>").split("?", 1)[0]
    return (case.actor, case.role, action, f"{case.method} {logged}", purpose)


async def audit_problems(world: World, cases: list[Case]) -> list[str]:
    """Every refusal of the matrix is in the log, once; every successful read of the match
    too, naming its subject; nothing else was refused."""
    refused = Counter(refusal(c) for c in cases if c.actor and c.status in (400, 403, 404))
    reads = Counter(
        c.actor for c in cases if c.path == f"/api/matches/{world.match_id}" and c.status == 200
    )
    conn = await asyncpg.connect(world.settings.database_url)
    try:

        async def logged() -> tuple[Counter[tuple[str, ...]], Counter[str]] | None:
            denied = await conn.fetch(
                "SELECT actor_id, actor_role, action, object_id, purpose FROM audit.entries"
                " WHERE source_system = 'notification' AND outcome = 'denied'"
            )
            read = await conn.fetch(
                "SELECT actor_id FROM audit.entries WHERE source_system = 'notification'"
                " AND outcome = 'success' AND action = 'read' AND object_type = 'match'"
                " AND object_id = $1 AND subjects = $2::text[]",
                str(world.match_id),
                [world.subject],
            )
            found = (Counter(tuple(r) for r in denied), Counter(r["actor_id"] for r in read))
            whole = found[0].total() >= refused.total() and found[1].total() >= reads.total()
            return found if whole else None

        try:
            denied, read = await eventually(logged, timeout=60)
        except AssertionError as exc:
            return [f"audit log incomplete: {exc}"[:4000]]
    finally:
        await conn.close()
    problems = [f"refusal not audited: {r}" for r in (refused - denied).elements()]
    problems += [f"refusal audited but not triggered: {r}" for r in (denied - refused).elements()]
    problems += [same("reads of the match audited per actor", dict(read), dict(reads)) or ""]
    return [p for p in problems if p]


# --- the test -----------------------------------------------------------------------


async def test_every_role_gets_exactly_what_rule_11_allows_and_every_refusal_is_audited(
    settings: Settings, services: dict[str, str]
) -> None:
    base = services["notification"]
    async with httpx.AsyncClient(timeout=10) as http:
        world = await prepare(settings, base, http)
        cases = matrix(world) + unauthenticated(world)
        assert len({c.id for c in cases}) == len(cases), "case ids must be unique"
        failures: list[str] = []
        for case in cases:
            status, headers, body = await ask(http, base, case)
            problem = judge(case, status, headers, body)
            if problem:
                failures.append(f"{case.id}: {problem}")
        # A live stream lives no longer than its token.
        short = minted(
            settings,
            DemoUser(A, A, f"{A}@voorbeeldrade.example", (Role.WORKER,), ORG[A]),
            lifetime=3,
        )
        async with asyncio.timeout(60):
            async with http.stream("GET", f"{base}/api/alerts/stream", headers=short) as live:
                events = [line async for line in live.aiter_lines() if line.startswith("event:")]
        if live.status_code != 200 or events[:1] != ["event: ready"]:
            failures.append(f"the short-lived stream: {live.status_code} {events}")
        config = await http.get(f"{base}/api/config")
        if (
            config.status_code != 200
            or config.json().get("audience") != settings.oidc_audience
            or config.json().get("scope") != settings.oidc_scope
        ):
            failures.append(f"GET /api/config without a token: {config.status_code} {config.text}")
    failures += await audit_problems(world, cases)
    assert not failures, f"{len(failures)} of {len(cases) + 1} cases failed:\n" + "\n".join(
        failures
    )

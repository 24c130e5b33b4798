"""The registration desk's web app: the page, its login configuration, and the API the
page calls with the worker's bearer token.

- `POST api/evaluate`: blinded elements (nothing else) to the pseudonymiser, under the
  partner's credential; the browser checks the proof and unblinds.
- `POST api/registrations`: a registration already pseudonymised in the browser; signed
  with the partner's key and produced to the partner's topic as the partner producer
  would. The worker's name and e-mail come from their token, not from the form.
- `GET api/registrations`: the worker's own registrations, and which are part of a case
  (asked of the municipality's inbox with the worker's own token).
- `POST api/registrations/{id}/withdraw`: resolved or unjustified.

Every body is read by a model that admits pseudonyms, codes and the worker's own case
reference only; nothing that could be a BSN is accepted, echoed, logged or stored.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from prometheus_client import CollectorRegistry, Counter, generate_latest
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from shared.auth import AuthError, Principal, Role, TokenVerifier
from shared.contracts import (
    PHONE_PATTERN,
    AgeLimitMonth,
    Category,
    PartnerReference,
    Pseudonym,
    Topics,
    WijkCode,
    WithdrawalReason,
    WorkerContact,
    keyed_id,
)
from shared.db import create_pool, migrate
from shared.i18n import AMSTERDAM
from shared.settings import Settings
from shared.webapp import STATIC, unauthenticated
from vroegsignaal.partner.config import PartnerConfig
from vroegsignaal.partner.desk import store
from vroegsignaal.partner.desk.config import DeskConfig
from vroegsignaal.partner.producer import PartnerProducer, Pseudonyms
from vroegsignaal.partner.pseudonymise import PseudonymisationError
from vroegsignaal.partner.rows import AgeProblem, age_problem
from vroegsignaal.partner.send import partner_broker

log = logging.getLogger("vroegsignaal.desk")
WEB = Path(__file__).parent / "web"
PREFIX = "/registratie"
# A registration's body is a few hundred bytes: one larger is refused before it is read.
MAX_BODY = 8 * 1024
# The child, up to four parents and a household: the elements one registration needs.
MAX_ELEMENTS = 6


# base64 of one 32-byte ristretto255 element: 43 characters and one '='.
Blinded = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$")]
KeyVersion = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9._-]{0,31}$")]


class EvaluateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key_version: KeyVersion
    blinded: list[Blinded] = Field(min_length=1, max_length=MAX_ELEMENTS)


class RegistrationRequest(BaseModel):
    """What the page submits: pseudonyms made in the browser, codes, the worker's own case
    reference. Never a BSN, a name of the child or a day of birth."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    submission: uuid.UUID = Field(description="The form's own id: sent twice, made once.")
    key_version: KeyVersion
    child: Pseudonym
    parents: list[Pseudonym] = Field(default_factory=list, max_length=4)
    household: Pseudonym | None = None
    age_limit_month: AgeLimitMonth
    category: Category
    wijk: WijkCode
    reference: PartnerReference | None = None


class WithdrawRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: WithdrawalReason


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def problems(invalid: ValidationError, model: type[BaseModel]) -> str:
    """What is wrong with a body, by field, never repeating a value: an unknown field is
    not named either (its name could be anything a caller typed, a BSN included)."""
    said = []
    for error in invalid.errors(include_input=False, include_url=False):
        if error["type"] == "extra_forbidden":
            said.append(
                "an unknown field (accepted: " + ", ".join(sorted(model.model_fields)) + ")"
            )
            continue
        known = [str(p) for p in error["loc"] if isinstance(p, int) or p in model.model_fields]
        where = ".".join(known) or "the body"
        said.append(f"{where}: {error['msg']}")
    return "; ".join(dict.fromkeys(said))


async def read_body(request: Request, model: type[Any]) -> Any:
    """The request's JSON body as `model`; a body too large, not JSON or not the model is
    refused with what is wrong, never with what it held."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise Refused(413, "too-large", f"the body is over {MAX_BODY} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise Refused(413, "too-large", f"the body is over {MAX_BODY} bytes")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, too deep, a huge number
        raise Refused(400, "not-json", "the body is not JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as invalid:
        raise Refused(400, "invalid", problems(invalid, model)) from None


@dataclass
class Partner:
    """One partner the desk registers for: its producer, its records' keys, its options."""

    config: PartnerConfig
    producer: PartnerProducer
    sealing: store.Sealing
    postcode_lookup: bool


class Desk:
    """The desk's state while it runs: its partners, database, issuer and metrics."""

    def __init__(self, settings: Settings, config: DeskConfig) -> None:
        self.settings = settings
        self.config = config
        self.partners: dict[str, Partner] = {}
        self.postcodes = config.postcode_areas()
        self.wijken = {w.code: w.name for w in config.wijken}
        self.registry = CollectorRegistry()
        self.refusals = Counter(
            "vroegsignaal_desk_refusals_total",
            "Desk requests refused",
            ["reason"],
            registry=self.registry,
        )
        self.registered = Counter(
            "vroegsignaal_desk_registrations_total",
            "Registrations the desk produced",
            ["partner"],
            registry=self.registry,
        )
        self.withdrawals = Counter(
            "vroegsignaal_desk_withdrawals_total",
            "Withdrawals the desk produced",
            ["partner", "reason"],
            registry=self.registry,
        )
        self.pool: asyncpg.Pool | None = None
        self.http = httpx.AsyncClient(timeout=15)
        self.verifier = TokenVerifier(
            settings.oidc_issuer, settings.oidc_audience, user_claim=settings.oidc_user_claim
        )
        self._brokers: list[Any] = []

    async def start(self) -> None:
        if not self.settings.desk_database_url:
            raise RuntimeError(
                "VS_DESK_DATABASE_URL is not set: the desk keeps its workers' registrations "
                "in a database of its own (a login that owns the schema 'desk')"
            )
        await migrate(self.settings.desk_database_url, store.SCHEMA, store.MIGRATIONS)
        self.pool = await create_pool(self.settings.desk_database_url, store.SCHEMA, max_size=5)
        topics = Topics(self.settings.topic_prefix)
        for config, postcode_lookup in self.config.partner_configs():
            broker = partner_broker(config, self.settings, f"desk-{config.partner_id}")
            await broker.start()
            self._brokers.append(broker)
            self.partners[config.organisation] = Partner(
                config,
                PartnerProducer(config, broker, topics, self.http),
                store.Sealing(config.partner_id, bytes.fromhex(config.id_key)),
                postcode_lookup,
            )

    async def stop(self) -> None:
        for broker in self._brokers:
            await broker.stop()
        if self.pool is not None:
            await self.pool.close()
        await self.verifier.aclose()
        await self.http.aclose()

    async def forget_old(self) -> None:
        """Now and then: the records past the desk's keeping period go."""
        while True:
            assert self.pool is not None
            try:
                async with self.pool.acquire() as conn:
                    gone = await store.forget_before(conn, self.config.keep_days)
                if gone:
                    log.info("forgot %d registrations past %d days", gone, self.config.keep_days)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("old records could not be forgotten now: %s", type(exc).__name__)
            await asyncio.sleep(3600)

    async def send(
        self, partner: Partner, registration: uuid.UUID, content: dict[str, Any]
    ) -> None:
        """Produce a kept registration as the partner producer would; once Kafka
        acknowledged it, mark it sent."""
        producer = partner.producer
        signal = producer.signal(
            registration,
            Pseudonyms(content["child"], list(content["parents"]), content["household"]),
            worker=WorkerContact.model_validate(content["worker"]),
            category=Category(content["category"]),
            wijk=content["wijk"],
            registered_at=datetime.fromisoformat(content["registered_at"]),
            age_limit_month=content["age_limit_month"],
            sent_at=datetime.now(UTC),
            reference=content["reference"],
        )
        await producer.send(signal, content["child"])
        assert self.pool is not None
        async with self.pool.acquire() as conn:
            await store.sent(conn, registration)
        self.registered.labels(partner.config.partner_id).inc()

    async def relay(self, interval: float = 5.0) -> None:
        """The desk's outbox: what was kept and not acknowledged (Kafka away when the
        worker sent it, the desk stopped in between) is sent again until it is."""
        by_id = {p.config.partner_id: p for p in self.partners.values()}
        while True:
            await asyncio.sleep(interval)
            assert self.pool is not None
            try:
                async with self.pool.acquire() as conn:
                    waiting = await store.unsent(conn, list(by_id), timedelta(seconds=interval))
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("kept registrations cannot be read now: %s", type(exc).__name__)
                continue
            for partner_id, worker, registration, sealed in waiting:
                partner = by_id[partner_id]
                try:
                    content = partner.sealing.open(registration, worker, sealed)
                except store.SealError:
                    log.warning("a kept registration does not open: altered or moved")
                    continue
                try:
                    await self.send(partner, registration, content)
                except Exception as exc:  # this partner's Kafka away: the others go on
                    log.warning("a kept registration could not be sent: %s", type(exc).__name__)
                    continue
                log.info("a kept registration was sent")

    def partner_of(self, principal: Principal) -> Partner:
        """The partner the worker registers for: their organisation's, if it registers
        here and they are a worker."""
        if not principal.has(Role.WORKER):
            raise Refused(
                403, "not-a-worker", "registering a concern needs the role worker at a partner"
            )
        partner = self.partners.get(principal.organisation or "")
        if partner is None:
            raise Refused(
                403,
                "not-this-desk",
                "your organisation does not register through this desk: it registers only "
                "for " + ", ".join(sorted(self.partners)),
            )
        return partner


def amsterdam_today() -> date:
    """Today where the workers are: a registration at 00:30 in the Netherlands is of that
    day (the month a youth turns 23 and a worker's daily limit follow it)."""
    return datetime.now(AMSTERDAM).date()


def _what(content: dict[str, Any]) -> dict[str, Any]:
    """What a registration says (not when it was kept)."""
    return {k: v for k, v in content.items() if k != "registered_at"}


def content_security_policy(issuer: str) -> str:
    """The page's scripts are its own files and its import map (by its hash); it talks to
    the desk and to the issuer (discovery, token) only, and is framed by no one."""
    html = (WEB / "index.html").read_text()
    found = re.search(r'<script type="importmap">(.*?)</script>', html, re.DOTALL)
    if found is None:
        raise RuntimeError("the page's import map is missing")
    digest = base64.b64encode(hashlib.sha256(found.group(1).encode()).digest()).decode()
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    return (
        f"default-src 'none'; script-src 'self' 'sha256-{digest}'; style-src 'self'; "
        f"img-src 'self'; connect-src 'self' {origin}; form-action 'none'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


Handler = Callable[[Request, Principal, Partner], Awaitable[Response]]


def contact_phone(principal: Principal) -> str | None:
    """The worker's phone number from their login, where it has a usable one: the form
    takes no phone number (nothing typed in it could carry a BSN)."""
    phone = principal.phone
    return phone if phone and re.match(PHONE_PATTERN, phone) else None


def create_app(settings: Settings, config: DeskConfig) -> Starlette:
    desk = Desk(settings, config)

    def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                principal = await desk.verifier.authenticate(request.scope)
            except AuthError as exc:
                desk.refusals.labels("unauthenticated").inc()
                return unauthenticated(exc)
            try:
                return await handler(request, principal, desk.partner_of(principal))
            except Refused as refused:
                desk.refusals.labels(refused.code).inc()
                body = {"error": refused.message, "code": refused.code}
                return JSONResponse(body, refused.status)

        return run

    def worker_of(principal: Principal, partner: Partner) -> str:
        return partner.sealing.worker(principal.user_id)

    async def kept_one(
        conn: Any, partner: Partner, worker: str, registration: uuid.UUID
    ) -> store.Stored | None:
        """The worker's kept registration; None if there is none, or none that opens."""
        try:
            return await store.one(conn, partner.sealing, worker, registration)
        except store.SealError:
            log.warning("a registration of the desk does not open: altered or moved")
            return None

    async def login_config(request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": settings.oidc_issuer,
                "client_id": settings.oidc_client_id,
                "scope": settings.oidc_scope,
            }
        )

    async def setup(request: Request, principal: Principal, partner: Partner) -> Response:
        """What the form needs: the pinned key, the wijken, the worker's own contact."""
        pseudonymiser = partner.producer.pseudonymiser
        return JSONResponse(
            {
                "organisation": partner.config.organisation,
                "worker": {
                    "worker_id": principal.user_id,
                    "name": principal.name,
                    "email": principal.email,
                    "phone": contact_phone(principal),
                },
                "key_version": pseudonymiser.key_version,
                "public_key": pseudonymiser.public_key.hex(),
                "categories": [c.value for c in Category],
                "wijken": [{"code": c, "name": n} for c, n in desk.wijken.items()],
                "postcodes": desk.postcodes if partner.postcode_lookup else None,
                "today": amsterdam_today().isoformat(),
            }
        )

    async def evaluate(request: Request, principal: Principal, partner: Partner) -> Response:
        asked: EvaluateRequest = await read_body(request, EvaluateRequest)
        pseudonymiser = partner.producer.pseudonymiser
        if asked.key_version != pseudonymiser.key_version:
            raise Refused(409, "key-version", "the pseudonymiser's key changed: reload the page")
        assert desk.pool is not None
        async with desk.pool.acquire() as conn:
            allowed = await store.spend(
                conn,
                partner.config.partner_id,
                worker_of(principal, partner),
                amsterdam_today(),
                len(asked.blinded),
                config.evaluations_per_worker_per_day,
            )
        if not allowed:
            raise Refused(
                429,
                "worker-limit",
                f"you have had {config.evaluations_per_worker_per_day} numbers pseudonymised "
                "today, the most one worker may; it renews tomorrow. Ask your organisation's "
                "administrator if you need more.",
            )
        try:
            evaluation = await pseudonymiser.evaluate(asked.blinded)
        except PseudonymisationError as exc:
            log.warning("the pseudonymiser refused or was away: %s", exc)
            raise Refused(
                502, "pseudonymiser", "the pseudonymiser cannot be reached now or refuses"
            ) from None
        return JSONResponse({"key_version": asked.key_version, "evaluation": evaluation})

    async def register(request: Request, principal: Principal, partner: Partner) -> Response:
        asked: RegistrationRequest = await read_body(request, RegistrationRequest)
        today = amsterdam_today()
        if asked.key_version != partner.producer.pseudonymiser.key_version:
            raise Refused(409, "key-version", "the pseudonymiser's key changed: reload the page")
        problem = age_problem(asked.age_limit_month, today)
        if problem is AgeProblem.TOO_OLD:
            raise Refused(
                400,
                "too-old",
                "the youth turns 23 this month or turned 23 before: only youths under 23 may "
                "be registered",
            )
        if problem is AgeProblem.NOT_BORN:
            raise Refused(400, "not-born", "the month the youth turns 23 lies too far ahead")
        if asked.wijk not in desk.wijken:
            raise Refused(400, "wijk", "the wijk is not one of this desk's wijken")
        if asked.child in asked.parents or len(set(asked.parents)) != len(asked.parents):
            raise Refused(400, "parents", "a person is given twice (youth and parents)")
        if not principal.email:
            raise Refused(
                400, "no-email", "your login carries no e-mail address: ask your administrator"
            )
        if len(principal.user_id) > 64:
            raise Refused(400, "contact", "your login's worker id is longer than 64 characters")
        try:
            worker = WorkerContact(
                worker_id=principal.user_id,
                display_name=principal.name[:120],
                email=principal.email,
                phone=contact_phone(principal),
            )
        except ValidationError:
            raise Refused(
                400, "contact", "your login's name or e-mail cannot be used as a contact"
            ) from None
        registration = keyed_id(
            bytes.fromhex(partner.config.id_key),
            "registration",
            partner.config.partner_id,
            "desk",
            str(asked.submission),
            asked.child,
        )
        content = {
            "child": asked.child,
            "parents": asked.parents,
            "household": asked.household,
            "age_limit_month": asked.age_limit_month,
            "category": asked.category.value,
            "wijk": asked.wijk,
            "reference": asked.reference,
            "worker": worker.model_dump(mode="json"),
            "registered_at": datetime.now(UTC).isoformat(),
        }
        who = worker_of(principal, partner)
        assert desk.pool is not None
        async with desk.pool.acquire() as conn:
            kept = await store.add(conn, partner.sealing, who, registration, content)
            if kept is None:  # the same form again: what was kept the first time
                kept = await kept_one(conn, partner, who, registration)
                if kept is None:
                    raise Refused(409, "taken", "this form was sent by someone else")
                if _what(kept.content) != _what(content):
                    raise Refused(409, "changed", "this form was sent before with other content")
        answer = {"registration": str(registration), "registered_at": kept.content["registered_at"]}
        if kept.sent_at is None:
            try:
                await desk.send(partner, registration, kept.content)
            except Exception as exc:  # kept: the desk's relay sends it when Kafka is back
                log.warning("a registration is kept to be sent later: %s", type(exc).__name__)
                return JSONResponse(answer | {"sent": False}, 202)
        return JSONResponse(answer | {"sent": True}, 201)

    async def registrations(request: Request, principal: Principal, partner: Partner) -> Response:
        assert desk.pool is not None
        async with desk.pool.acquire() as conn:
            mine = await store.of_worker(conn, partner.sealing, worker_of(principal, partner))
        cases = await cases_of(request)
        return JSONResponse(
            {
                "cases_known": cases is not None,
                "registrations": [
                    {
                        "registration": str(r.registration_id),
                        "reference": r.content["reference"],
                        "registered_at": r.content["registered_at"],
                        "category": r.content["category"],
                        "wijk": r.content["wijk"],
                        "wijk_name": desk.wijken.get(r.content["wijk"]),
                        "sent": r.sent_at is not None,
                        "withdrawn_at": r.withdrawn_at.isoformat() if r.withdrawn_at else None,
                        "withdrawn_reason": r.withdrawn_reason,
                        "case": (cases or {}).get(str(r.registration_id)),
                    }
                    for r in mine
                ],
            }
        )

    async def cases_of(request: Request) -> dict[str, dict[str, str]] | None:
        """Which of the worker's registrations are part of a case, as the inbox says
        (asked with the worker's own token); None when it cannot be asked."""
        if not config.inbox_url:
            return None
        try:
            answer = await desk.http.get(
                f"{config.inbox_url.rstrip('/')}/api/registrations",
                headers={"authorization": request.headers["authorization"]},
            )
        except httpx.HTTPError as exc:
            log.warning("the inbox could not be asked: %s", type(exc).__name__)
            return None
        if answer.status_code != 200:
            log.warning("the inbox answered %d", answer.status_code)
            return None
        try:
            return {
                str(r["number"]): {"match_id": str(r["match_id"]), "state": str(r["state"])}
                for r in answer.json()["registrations"]
            }
        except (ValueError, KeyError, TypeError):
            log.warning("the inbox's answer is not the list of registrations in cases")
            return None

    async def withdraw(request: Request, principal: Principal, partner: Partner) -> Response:
        try:
            registration = uuid.UUID(request.path_params["registration"])
        except ValueError:
            raise Refused(404, "unknown", "no such registration of yours") from None
        asked: WithdrawRequest = await read_body(request, WithdrawRequest)
        assert desk.pool is not None
        async with desk.pool.acquire() as conn:
            kept = await kept_one(conn, partner, worker_of(principal, partner), registration)
        if kept is None or kept.sent_at is None:
            raise Refused(404, "unknown", "no such registration of yours")
        async with desk.pool.acquire() as conn:
            if not await store.claim_withdrawal(conn, registration, asked.reason.value):
                raise Refused(409, "withdrawn", "this registration was withdrawn before")
        child = kept.content["child"]
        withdrawal = partner.producer.withdrawal(registration, child, asked.reason)
        try:
            await partner.producer.send(withdrawal, child)
        except BaseException as exc:  # cancelled too: the claim goes, the worker tries again
            log.warning("a withdrawal could not be produced: %s", type(exc).__name__)
            async with desk.pool.acquire() as conn:
                await store.unclaim_withdrawal(conn, registration)
            if not isinstance(exc, Exception):
                raise
            raise Refused(503, "kafka", "the withdrawal could not be sent now; try again") from None
        desk.withdrawals.labels(partner.config.partner_id, asked.reason.value).inc()
        return JSONResponse({"registration": str(registration), "withdrawn": asked.reason.value})

    async def live(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def ready(request: Request) -> Response:
        if desk.pool is None or not desk.partners:
            return PlainTextResponse("starting", 503)
        try:
            async with desk.pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError):
            return PlainTextResponse("database unreachable", 503)
        return PlainTextResponse("ok")

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(desk.registry), media_type="text/plain; version=0.0.4")

    async def home(request: Request) -> Response:
        return RedirectResponse(f"{PREFIX}/")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await desk.start()
        forgetting = asyncio.create_task(desk.forget_old())
        relaying = asyncio.create_task(desk.relay())
        log.info("the desk registers for %s", ", ".join(sorted(desk.partners)))
        try:
            yield
        finally:
            for task in (forgetting, relaying):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await desk.stop()
            log.info("the desk shut down gracefully")

    api = f"{PREFIX}/api"
    policy = content_security_policy(settings.oidc_issuer)

    async def secure_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.update(
            {
                "Content-Security-Policy": policy,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cross-Origin-Opener-Policy": "same-origin",
            }
        )
        if request.url.path.startswith(api):
            response.headers["Cache-Control"] = "no-store"
        return response

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/health/live", live),
            Route("/health/ready", ready),
            Route("/metrics", metrics),
            Route(f"{api}/config", login_config),
            Route(f"{api}/setup", guarded(setup)),
            Route(f"{api}/evaluate", guarded(evaluate), methods=["POST"]),
            Route(f"{api}/registrations", guarded(registrations)),
            Route(f"{api}/registrations", guarded(register), methods=["POST"]),
            Route(
                f"{api}/registrations/{{registration}}/withdraw",
                guarded(withdraw),
                methods=["POST"],
            ),
            Route(PREFIX, home),
            Mount(f"{PREFIX}/lib", StaticFiles(directory=STATIC)),
            Mount(PREFIX, StaticFiles(directory=WEB, html=True)),
        ],
        lifespan=lifespan,
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=secure_headers)],
    )
    app.state.desk = desk
    return app

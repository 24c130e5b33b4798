"""Composition root of the pseudonymiser: its HTTP API, its key ring, its audit trail."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from faststream.asgi import AsgiFastStream, AsgiResponse, Request, get, post
from prometheus_client import Counter, Gauge

from services.pseudonymiser import store
from services.pseudonymiser.domain import (
    SUITE,
    EvaluationRefused,
    KeyRing,
    PartnerCredentials,
    PseudonymiserConfigError,
    RateLimiter,
)
from shared.contracts import AuditAction, AuditActor, AuditOutcome
from shared.db import Conn
from shared.service import Routes, ServiceRuntime, build_service, json_response
from shared.settings import Settings

NAME = "pseudonymiser"
MAX_BODY = 8 * 1024 * 1024

EVALUATIONS = Counter(
    "vroegsignaal_pseudonymiser_elements_total", "Blinded elements evaluated", ["key_version"]
)
REFUSALS = Counter("vroegsignaal_pseudonymiser_refusals_total", "Requests refused", ["code"])
PARTNER_ELEMENTS = Counter(
    "vroegsignaal_pseudonymiser_partner_elements_total",
    "Blinded elements evaluated per partner",
    ["partner"],
)
BUDGET_USED = Gauge(
    "vroegsignaal_pseudonymiser_budget_used_ratio",
    "The share of its daily budget a partner has used today (as this replica last saw it)",
    ["partner"],
)
_USED: dict[str, tuple[date, float]] = {}


def used_today(partner: str, day: date, ratio: float) -> None:
    """A partner's share of its budget on `day`, as the gauge reads it when scraped: 0
    once the day is over (the budget renewed), whether or not the partner sent since."""
    if partner not in _USED:
        BUDGET_USED.labels(partner).set_function(lambda: _ratio_today(partner))
    _USED[partner] = (day, ratio)


def _ratio_today(partner: str) -> float:
    day, ratio = _USED.get(partner, (None, 0.0))
    return ratio if day == datetime.now(UTC).date() else 0.0


class OverBudget(Exception):
    """The partner's daily budget would be exceeded."""


class RateLimited(Exception):
    """The partner's rate, over every replica, would be exceeded."""


def load_keyring(settings: Settings) -> KeyRing:
    if settings.oprf_keyring_file is None:
        raise PseudonymiserConfigError(
            "VS_OPRF_KEYRING_FILE is not set: the pseudonymiser needs its key ring "
            "('vroegsignaal secrets init' makes one for a local stack)"
        )
    path = settings.oprf_keyring_file
    return KeyRing.parse(path.read_text(), source=str(path))


def load_credentials(settings: Settings) -> PartnerCredentials:
    if settings.pseudonymiser_credentials_file is None:
        raise PseudonymiserConfigError(
            "VS_PSEUDONYMISER_CREDENTIALS_FILE is not set: no partner could authenticate"
        )
    path = settings.pseudonymiser_credentials_file
    return PartnerCredentials.parse(path.read_text(), source=str(path))


def _refuse(code: str, reason: str, status: int) -> AsgiResponse:
    REFUSALS.labels(code).inc()
    return json_response({"error": code, "reason": reason}, status)


def create_app(settings: Settings) -> AsgiFastStream:
    keyring = load_keyring(settings)
    credentials = load_credentials(settings)
    rate = settings.oprf_rate_per_second
    limiter = RateLimiter(rate, burst=rate)

    def register(runtime: ServiceRuntime) -> Routes:
        async def audit(
            partner: str,
            count: int,
            version: str,
            outcome: AuditOutcome,
            conn: Conn | None = None,
            why: str = "",
        ) -> None:
            async with contextlib.AsyncExitStack() as stack:
                if conn is None:
                    conn = await stack.enter_async_context(runtime.pool.acquire())
                    await stack.enter_async_context(conn.transaction())
                await runtime.audit.record(
                    conn,
                    action=AuditAction.CREATE,
                    outcome=outcome,
                    actor=AuditActor(actor_id=partner, role="partner", organisation=partner),
                    object_type="oprf-evaluation",
                    object_id=f"{version}:{count}",
                    purpose=f"pseudonymiser: evaluate blinded elements for a partner{why}",
                )

        @get(description="The public keys by version, and which one is current")
        async def keys(request: Request) -> AsgiResponse:
            return json_response(
                {
                    "suite": SUITE,
                    "current": keyring.current,
                    "keys": {v: pk.hex() for v, pk in keyring.public_keys().items()},
                }
            )

        @post(description="Evaluate a batch of blinded elements (RFC 9497 VOPRF)")
        async def evaluate(request: Request) -> AsgiResponse:
            auth = request.headers.get("authorization", "")
            partner = credentials.authenticate(auth.removeprefix("Bearer ").strip())
            if not auth.startswith("Bearer ") or partner is None:
                return _refuse("unauthenticated", "send 'Authorization: Bearer <token>'", 401)
            if int(request.headers.get("content-length") or 0) > MAX_BODY:
                return _refuse("too-large", f"the body may hold at most {MAX_BODY} bytes", 413)
            try:
                body: Any = json.loads(await request.body())
                version = str(body.get("key_version") or keyring.current)
                blinded = [base64.b64decode(b, validate=True) for b in body["blinded"]]
            except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
                return _refuse(
                    "malformed-request",
                    "send JSON {'key_version': ..., 'blinded': [base64, ...]}",
                    400,
                )
            if not limiter.allow(partner, len(blinded), time.monotonic()):
                await audit(partner, len(blinded), version, AuditOutcome.DENIED)
                return _refuse("rate-limited", "too many elements per second; retry later", 429)
            today = datetime.now(UTC).date()
            budget = credentials.budget(partner).on(today)
            if len(blinded) > budget:
                await audit(partner, len(blinded), version, AuditOutcome.DENIED)
                return _refuse(
                    "larger-than-budget",
                    f"{len(blinded)} elements in one request, more than the partner's whole "
                    f"daily budget of {budget}: send smaller batches",
                    413,
                )
            try:
                # Counted and evaluated in one transaction: a refused evaluation spends
                # nothing, and the budget holds however many replicas answer.
                async with runtime.pool.acquire() as conn, conn.transaction():
                    # This replica's bucket above spares the database a flood; this one,
                    # shared, holds the rate across replicas.
                    if not await store.take(conn, partner, len(blinded), rate, rate):
                        raise RateLimited
                    spent = await store.spend(conn, partner, today, len(blinded), budget)
                    if spent is None:
                        raise OverBudget
                    evaluation = keyring.evaluate(
                        version, blinded, max_batch=settings.oprf_max_batch
                    )
                    await audit(
                        partner, len(blinded), version, AuditOutcome.SUCCESS, conn,
                        f" ({spent} of its {budget} for {today})",
                    )  # fmt: skip
            except RateLimited:
                await audit(partner, len(blinded), version, AuditOutcome.DENIED)
                return _refuse("rate-limited", "too many elements per second; retry later", 429)
            except EvaluationRefused as refused:
                await audit(partner, len(blinded), version, AuditOutcome.DENIED)
                return _refuse(refused.code, refused.reason, refused.status)
            except OverBudget:
                async with runtime.pool.acquire() as conn, conn.transaction():
                    so_far, refusals = await store.refused(conn, partner, today)
                    # The first refusal of the day is in the audit log, the others in
                    # the metrics only: a partner past its budget cannot flood the log.
                    if refusals == 1:
                        await audit(
                            partner, len(blinded), version, AuditOutcome.DENIED, conn,
                            f": over its daily budget ({so_far} of {budget} used on {today})",
                        )  # fmt: skip
                return _refuse(
                    "daily-budget-exhausted",
                    f"partner {partner!r} has had {so_far} of its {budget} elements for "
                    f"{today} (UTC) evaluated; {len(blinded)} more would exceed it. The "
                    "budget renews at 00:00 UTC. For a first export of a backlog, ask the "
                    "municipality for an approved backfill (partners file: backfill).",
                    429,
                )
            EVALUATIONS.labels(version).inc(len(blinded))
            PARTNER_ELEMENTS.labels(partner).inc(len(blinded))
            used_today(partner, today, spent / budget)
            return json_response(
                {
                    "suite": SUITE,
                    "key_version": version,
                    "evaluation": base64.b64encode(evaluation).decode(),
                }
            )

        return [("/v1/keys", keys), ("/v1/evaluate", evaluate)]

    app, _ = build_service(NAME, Path(__file__).parent, settings, register)
    return app

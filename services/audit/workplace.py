"""The privacy officer's workplace beside the search: the log's integrity (the latest
signed head, the last full verification and its result, and starting one), the data
subjects' access reports to read and print, and the export of a period for a
supervisor. Role privacy_officer only; every action is itself in the log."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from services.audit import store
from services.audit.check import ExportError, check, export
from services.audit.report import report_html
from shared.auth import Principal, Role
from shared.contracts import AuditAction, AuditOutcome
from shared.i18n import UnknownLanguage, language_of
from shared.service import ServiceRuntime
from shared.webapp import Denied, actor, iso_moment, parse_uuid, require

log = logging.getLogger(__name__)
REPORTS_LISTED = 200
SHOWN_PROBLEMS = 50
# A verification not ended this long after its start is taken as interrupted.
STALE_SECONDS = 3600


def routes(
    runtime: ServiceRuntime,
    public_key: Ed25519PublicKey,
    guarded: Callable[[Any], Any],
) -> list[Route]:
    key = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    # The tasks this process runs (held, so none is collected mid-way); whether one runs
    # anywhere is the database's to say.
    tasks: set[asyncio.Task[None]] = set()

    async def integrity(request: Request, principal: Principal) -> Response:
        require(principal, Role.PRIVACY_OFFICER)
        async with runtime.pool.acquire() as conn, conn.transaction():
            head = await store.latest_head(conn)
            entries = await store.size(conn)
            last = await store.last_verification(conn)
            await runtime.audit.record(
                conn,
                action=AuditAction.READ,
                object_type="audit-log-integrity",
                actor=actor(principal),
                purpose="audit: the privacy officer reads the log's integrity",
            )
        return JSONResponse(
            {
                "entries": entries,
                "head": None
                if head is None
                else {
                    "size": head.size,
                    "root": head.root.hex(),
                    "signed_at": head.signed_at.isoformat(),
                    "key_id": head.key_id,
                },
                "public_key": key.hex(),
                "last_verification": None if last is None else _verification(last),
            }
        )

    async def start_verification(request: Request, principal: Principal) -> Response:
        require(principal, Role.PRIVACY_OFFICER)
        verification_id = uuid.uuid4()
        async with runtime.pool.acquire() as conn, conn.transaction():
            if not await store.start_verification(
                conn, verification_id, principal.user_id, STALE_SECONDS
            ):
                raise Denied(409, "a full verification is running; wait for its result")
            await runtime.audit.record(
                conn,
                action=AuditAction.READ,
                object_type="audit-log-verification",
                object_id=str(verification_id),
                actor=actor(principal),
                purpose="audit: the privacy officer starts a full verification of the log",
            )
        task = asyncio.create_task(verify(verification_id), name=f"verification {verification_id}")
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return JSONResponse({"verification_id": str(verification_id)}, status_code=202)

    async def verify(verification_id: uuid.UUID) -> None:
        """Recompute every entry, the tree and every signed head, against the database
        and the heads published on Kafka (outside the database), and record the result,
        itself in the log."""
        try:
            async with runtime.pool.acquire() as conn:
                entries = await store.size(conn)
            problems = await check(runtime.settings, key, with_topic=True)
        except Exception as exc:  # the result says what stopped it, not a silent end
            log.exception("verification %s failed to run", verification_id)
            entries, problems = 0, [f"the verification could not run: {type(exc).__name__}"]
        try:
            await record(verification_id, entries, problems)
        except Exception:  # the database went away: the row ends as interrupted
            log.exception("verification %s: its result could not be recorded", verification_id)

    async def record(verification_id: uuid.UUID, entries: int, problems: list[str]) -> None:
        async with runtime.pool.acquire() as conn, conn.transaction():
            await store.finish_verification(
                conn, verification_id, datetime.now(UTC), entries, problems
            )
            await runtime.audit.record(
                conn,
                action=AuditAction.READ,
                outcome=AuditOutcome.SUCCESS if not problems else AuditOutcome.FAILED,
                object_type="audit-log-verification",
                object_id=str(verification_id),
                purpose=f"audit: full verification of {entries} entries: "
                + ("intact" if not problems else f"{len(problems)} problems found"),
            )

    async def reports(request: Request, principal: Principal) -> Response:
        require(principal, Role.PRIVACY_OFFICER)
        async with runtime.pool.acquire() as conn, conn.transaction():
            rows = await store.recent_reports(conn, REPORTS_LISTED)
            await runtime.audit.record(
                conn,
                action=AuditAction.READ,
                object_type="subject-report-list",
                actor=actor(principal),
                purpose=f"audit: the privacy officer lists access reports ({len(rows)})",
            )
        return JSONResponse(
            {
                "reports": [
                    {"request_id": str(request_id), "created_at": made.isoformat()}
                    for request_id, made in rows
                ]
            }
        )

    async def report(request: Request, principal: Principal) -> Response:
        require(principal, Role.PRIVACY_OFFICER)
        request_id = parse_uuid(request.path_params["request_id"], "access report")
        printable = request.query_params.get("format") == "html"
        async with runtime.pool.acquire() as conn, conn.transaction():
            found = await store.report(conn, request_id)
            if found is None:
                raise Denied(404, "no access report for that request (yet)")
            await runtime.audit.record(
                conn,
                action=AuditAction.READ,
                object_type="subject-report",
                object_id=str(request_id),
                subjects=await store.report_subjects(conn, request_id),
                actor=actor(principal),
                purpose="audit: the privacy officer reads a data subject's access report"
                + (" (printable)" if printable else ""),
            )
        content = json.loads(found)
        if printable:
            try:
                language = language_of(request.query_params.get("lang"), "the lang parameter")
            except UnknownLanguage as unknown:
                raise Denied(400, str(unknown)) from None
            return HTMLResponse(report_html(content, language))
        return JSONResponse(content)

    async def export_period(request: Request, principal: Principal) -> Response:
        require(principal, Role.PRIVACY_OFFICER)
        since, until = _moment(request, "from"), _moment(request, "to")
        if until <= since:
            raise Denied(400, "'to' must lie after 'from'")
        try:
            lines = await export(runtime.settings, since, until)
        except ExportError as exc:
            raise Denied(409, str(exc)) from None
        exported = [json.loads(line) for line in lines[1:]]
        async with runtime.pool.acquire() as conn, conn.transaction():
            later = await store.recorded_after_head(
                conn, since, until, json.loads(lines[0])["size"]
            )
            await runtime.audit.record(
                conn,
                action=AuditAction.EXPORT,
                object_type="audit-log",
                object_id=f"{since.isoformat()}/{until.isoformat()}",
                # Whose entries went to the supervisor: in each one's access report.
                subjects=sorted(
                    {s for e in exported for s in json.loads(e["entry"]).get("subjects") or ()}
                ),
                actor=actor(principal),
                purpose=f"audit: export of {len(exported)} entries with their proofs, "
                f"for a supervisor ({later} recorded after the latest signed head left out)",
            )
        name = f"audit-export-{since.date()}-{until.date()}.jsonl"
        return Response(
            "".join(line + "\n" for line in lines),
            media_type="application/x-ndjson",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                # Entries of the period recorded after the head it proves against.
                "X-Entries-After-Head": str(later),
            },
        )

    return [
        Route("/audit/v1/integrity", guarded(integrity)),
        Route("/audit/v1/verifications", guarded(start_verification), methods=["POST"]),
        Route("/audit/v1/reports", guarded(reports)),
        Route("/audit/v1/reports/{request_id}", guarded(report)),
        Route("/audit/v1/export", guarded(export_period)),
    ]


def _verification(row: Any) -> dict[str, Any]:
    problems: list[str] = json.loads(row["problems"]) if row["problems"] is not None else []
    interrupted = bool(problems) and str(problems[0]).startswith("interrupted:")
    if row["finished_at"] is not None:
        state = "interrupted" if interrupted else "intact" if not problems else "problems"
    elif datetime.now(UTC) - row["started_at"] > timedelta(seconds=STALE_SECONDS):
        state = "interrupted"  # its process ended before it did (on any replica)
    else:
        state = "running"
    return {
        "verification_id": str(row["verification_id"]),
        "started_at": row["started_at"].isoformat(),
        "started_by": row["started_by"],
        "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
        "state": state,
        "entries": row["entries"],
        "problems": problems[:SHOWN_PROBLEMS],
        "problem_count": len(problems),
    }


def _moment(request: Request, name: str) -> datetime:
    value = iso_moment(request.query_params.get(name), name)
    if value is None:
        raise Denied(400, f"give '{name}' as an ISO date-time with a time zone")
    return value

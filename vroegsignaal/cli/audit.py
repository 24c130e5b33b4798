"""The audit log: verify, export, reports."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from shared.audit import AuditTrail
from shared.contracts import (
    AuditAction,
    AuditActor,
    AuditOutcome,
)
from shared.i18n import UnknownLanguage, language_of
from shared.settings import Settings
from vroegsignaal.cli.app import app
from vroegsignaal.cli.common import as_operator
from vroegsignaal.console import fail

audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    public_key: Annotated[
        str,
        typer.Option(
            envvar="VS_AUDIT_PUBLIC_KEY", help="The audit service's Ed25519 public key (hex)."
        ),
    ],
    topic: Annotated[
        bool, typer.Option(help="Also check against the heads published on Kafka.")
    ] = True,
) -> None:
    """Recompute the audit log's tree and every signed head; report what is wrong.
    Exit 0 when intact, 2 when anything was found."""
    from services.audit.check import check

    try:
        key = bytes.fromhex(public_key.strip())
    except ValueError:
        raise fail("the public key must be 64 hex characters") from None
    problems = asyncio.run(check(Settings(), key, with_topic=topic))
    if not problems:
        typer.echo("the audit log is intact: every entry, the tree and every signed head verify")
        return
    for problem in problems:
        typer.echo(f"PROBLEM: {problem}")
    raise typer.Exit(code=2)


@audit_app.command("export")
def audit_export(
    start: Annotated[str, typer.Option("--from", help="ISO date-time, inclusive")],
    end: Annotated[str, typer.Option("--to", help="ISO date-time, exclusive")],
    output: Annotated[Path, typer.Option(help="Where to write the JSON lines")],
) -> None:
    """Export a period of the audit log with inclusion proofs against a signed head."""

    from services.audit.check import ExportError, export

    try:
        since, until = datetime.fromisoformat(start), datetime.fromisoformat(end)
    except ValueError:
        raise fail("--from and --to must be ISO date-times, e.g. 2026-11-01T00:00+01:00") from None
    try:
        lines = asyncio.run(export(Settings(), since, until))
    except ExportError as exc:
        raise fail(str(exc)) from None
    output.write_text("".join(line + "\n" for line in lines))

    async def _logged(conn: Any, trail: AuditTrail, who: AuditActor) -> None:
        await trail.record(
            conn,
            action=AuditAction.EXPORT,
            object_type="audit-log",
            object_id=f"{since.isoformat()}/{until.isoformat()}",
            actor=who,
            purpose=f"audit: export of {len(lines) - 1} entries with their proofs",
        )

    as_operator("audit", "privacy_officer", _logged)
    typer.echo(f"{len(lines) - 1} entries with their proofs in {output}")


@audit_app.command("verify-export")
def audit_verify_export(
    export_file: Annotated[Path, typer.Argument(help="An export from 'audit export'")],
    public_key: Annotated[
        str, typer.Option(envvar="VS_AUDIT_PUBLIC_KEY", help="The audit public key (hex).")
    ],
) -> None:
    """Verify an export with nothing but the public key (what a third party runs)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from services.audit.verify import verify_export

    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key.strip()))
    except ValueError:
        raise fail("the public key must be 64 hex characters") from None
    verified, problems = verify_export(export_file.read_text().splitlines(), key)
    for problem in problems:
        typer.echo(f"PROBLEM: {problem}")
    if problems:
        raise typer.Exit(code=2)
    typer.echo(f"all {verified} entries are in the signed log")


@audit_app.command("report")
def audit_report(
    request_id: Annotated[str, typer.Argument(help="The id 'partner subject-report' printed")],
    html_file: Annotated[
        Path | None, typer.Option("--html", help="Also write a printable page here.")
    ] = None,
    language: Annotated[
        str, typer.Option(help="The printable page's language: nl (the default) or en.")
    ] = "nl",
) -> None:
    """Print a data subject's access report (JSON), for the privacy officer."""
    import uuid

    from services.audit import store
    from services.audit.report import report_html
    from services.audit.store import report_subjects

    try:
        page_language = language_of(language, "--language")
    except UnknownLanguage as unknown:
        raise fail(str(unknown)) from None
    try:
        wanted = uuid.UUID(request_id)
    except ValueError:
        raise fail("the request id is a UUID, as 'partner subject-report' printed it") from None

    async def _load(conn: Any, trail: AuditTrail, who: AuditActor) -> object:
        found = await store.report(conn, wanted)
        await trail.record(
            conn,
            action=AuditAction.READ,
            outcome=AuditOutcome.SUCCESS if found else AuditOutcome.FAILED,
            object_type="subject-report",
            object_id=str(wanted),
            subjects=await report_subjects(conn, wanted),
            actor=who,
            purpose="audit: the privacy officer reads a data subject's access report",
        )
        return found

    raw = as_operator("audit", "privacy_officer", _load)
    if raw is None:
        raise fail("no report for that request (yet): the audit service builds it shortly")
    report = json.loads(str(raw))
    typer.echo(json.dumps(report, indent=2))
    if html_file is not None:
        html_file.write_text(report_html(report, page_language))

"""Erasing a data subject as a whole: the privacy officer's decision."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from shared.settings import Settings
from vroegsignaal.cli.app import app
from vroegsignaal.console import fail

erasure_app = typer.Typer(
    help="Erasing a data subject as a whole: the privacy officer's decision on partners' "
    "erasure requests where other organisations keep registrations. Through the audit "
    "service's API with the officer's own OIDC token (role privacy_officer): who decides "
    "is who the token says, never a name typed in. Every step is audited.",
    no_args_is_help=True,
)
app.add_typer(erasure_app, name="erasure")

TokenOption = Annotated[
    str,
    typer.Option(
        envvar="VS_TOKEN",
        help="The privacy officer's access token (locally: 'vroegsignaal issuer token "
        "fg-voorbeeldrade').",
    ),
]
AuditUrlOption = Annotated[
    str | None,
    typer.Option(envvar="VS_AUDIT_URL", help="The audit service (default: the local one)."),
]


def _audit_api(
    method: str, path: str, token: str, audit_url: str | None, body: object = None
) -> Any:
    import httpx

    settings = Settings()
    base = (audit_url or f"http://{settings.http_host}:{settings.audit_port}").rstrip("/")
    try:
        response = httpx.request(
            method,
            f"{base}{path}",
            json=body,
            headers={"Authorization": f"Bearer {token.strip()}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach the audit service at {base} ({exc}); set VS_AUDIT_URL") from None
    try:
        data = response.json()
    except ValueError:
        data = {"error": response.text[:200]}
    if response.status_code != 200:
        raise fail(f"the audit service refused ({response.status_code}): {data.get('error')}")
    return data


@erasure_app.command("list")
def erasure_list(
    token: TokenOption,
    audit_url: AuditUrlOption = None,
    decided: Annotated[
        bool, typer.Option("--decided", help="The decided requests instead of the pending.")
    ] = False,
) -> None:
    """Print the erasure requests awaiting a decision (or the decided ones), as JSON."""
    status = "decided" if decided else "pending"
    page = _audit_api("GET", f"/audit/v1/erasures?status={status}", token, audit_url)
    typer.echo(json.dumps(page["requests"], indent=2))
    if page.get("more"):
        typer.secho("(more than these; the oldest first)", err=True)


def _decide_erasure(
    request_id: str, approve: bool, reason: str, token: str, audit_url: str | None
) -> None:
    import uuid

    try:
        wanted = uuid.UUID(request_id)
    except ValueError:
        raise fail("the request id is a UUID, as 'erasure list' prints it") from None
    decided = _audit_api(
        "POST",
        f"/audit/v1/erasures/{wanted}/decision",
        token,
        audit_url,
        {"approve": approve, "reason": reason},
    )
    typer.echo(json.dumps(decided, indent=2))


@erasure_app.command("approve")
def erasure_approve(
    request_id: Annotated[str, typer.Argument(help="The request id 'erasure list' prints")],
    token: TokenOption,
    audit_url: AuditUrlOption = None,
    reason: Annotated[str, typer.Option(help="Why (optional; no names or numbers)")] = "",
) -> None:
    """Approve erasing the subject as a whole: every organisation's registrations end
    and its data key is shredded. Irreversible."""
    _decide_erasure(request_id, True, reason, token, audit_url)


@erasure_app.command("refuse")
def erasure_refuse(
    request_id: Annotated[str, typer.Argument(help="The request id 'erasure list' prints")],
    reason: Annotated[
        str, typer.Option(help="Why, for the partner to tell the data subject (no names)")
    ],
    token: TokenOption,
    audit_url: AuditUrlOption = None,
) -> None:
    """Refuse erasing the subject as a whole: other organisations' registrations stay."""
    _decide_erasure(request_id, False, reason, token, audit_url)

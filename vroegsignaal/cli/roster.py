"""The JGT roster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from shared.audit import AuditTrail
from shared.contracts import (
    AuditActor,
)
from vroegsignaal.cli.app import app
from vroegsignaal.cli.common import Change, as_operator
from vroegsignaal.console import fail

roster_app = typer.Typer(
    help="The JGT roster: wijken, teams, workers, team leads, the regie role. Every change "
    "is audited.",
    no_args_is_help=True,
)
app.add_typer(roster_app, name="roster")


def _roster_change(change: Change) -> None:
    as_operator("notification", "roster-admin", change)


@roster_app.command("show")
def roster_show() -> None:
    """Print the roster as stored (teams, wijken, members and whether they are active)."""
    from services.notification import roster

    async def _show(conn: Any, trail: AuditTrail, who: AuditActor) -> None:
        typer.echo(json.dumps(await roster.show(conn), indent=2))

    _roster_change(_show)


@roster_app.command("load")
def roster_load(
    file: Annotated[Path, typer.Argument(help="The roster YAML (see config/roster.yaml).")],
) -> None:
    """Make the stored roster equal to the file; people left out are deactivated."""
    from services.notification import roster

    try:
        parsed = roster.load_roster_file(file)
    except roster.RosterError as exc:
        raise fail(str(exc)) from None

    async def _load(conn: Any, trail: AuditTrail, who: AuditActor) -> None:
        await roster.load(conn, parsed, trail, who)

    _roster_change(_load)
    typer.echo(f"roster loaded from {file}")


@roster_app.command("add-worker")
def roster_add_worker(
    team: Annotated[str, typer.Argument(help="Team id, e.g. jgt-noord")],
    worker_id: Annotated[str, typer.Argument(help="The worker's user id (the OIDC 'sub')")],
    name: Annotated[str, typer.Option(help="Display name")],
    email: Annotated[str, typer.Option(help="Work e-mail address")],
    phone: Annotated[str | None, typer.Option(help="Work phone number")] = None,
    category: Annotated[
        str, typer.Option(help="Organisation category (decides who may coordinate)")
    ] = "jeugdhulp",
) -> None:
    """Add a worker to a team."""
    from pydantic import ValidationError

    from services.notification import roster

    try:
        worker = roster.Worker(
            id=worker_id,
            name=name,
            email=email,
            phone=phone,
            category=category,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise fail(f"not a valid worker: {problems}") from None

    async def _add(conn: Any, trail: AuditTrail, who: AuditActor) -> None:
        await roster.add_worker(conn, worker, team, trail, who)

    _roster_change(_add)
    typer.echo(f"{worker_id} added to {team}")


@roster_app.command("deactivate")
def roster_deactivate(user_id: str) -> None:
    """Deactivate a person: no new alerts or coordination; their history stays."""
    from services.notification import roster

    async def _off(conn: Any, trail: AuditTrail, who: AuditActor) -> None:
        await roster.set_active(conn, user_id, False, trail, who)

    _roster_change(_off)
    typer.echo(f"{user_id} deactivated")


@roster_app.command("activate")
def roster_activate(user_id: str) -> None:
    """Reactivate a deactivated person."""
    from services.notification import roster

    async def _on(conn: Any, trail: AuditTrail, who: AuditActor) -> None:
        await roster.set_active(conn, user_id, True, trail, who)

    _roster_change(_on)
    typer.echo(f"{user_id} activated")


@roster_app.command("remove")
def roster_remove(user_id: str) -> None:
    """Remove someone who never received an alert (anyone else: deactivate)."""
    from services.notification import roster

    async def _remove(conn: Any, trail: AuditTrail, who: AuditActor) -> None:
        await roster.remove(conn, user_id, trail, who)

    _roster_change(_remove)
    typer.echo(f"{user_id} removed")


@roster_app.command("move-wijk")
def roster_move_wijk(
    wijk: Annotated[str, typer.Argument(help="Wijk code, e.g. WK099901")],
    team: Annotated[str, typer.Argument(help="The team that serves it from now on")],
) -> None:
    """Let another team serve a wijk (new matches there go to that team)."""
    from services.notification import roster

    async def _move(conn: Any, trail: AuditTrail, who: AuditActor) -> None:
        await roster.move_wijk(conn, wijk, team, trail, who)

    _roster_change(_move)
    typer.echo(f"{wijk} is served by {team}")

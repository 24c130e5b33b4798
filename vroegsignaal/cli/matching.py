"""The matching engine, offline."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from shared.settings import Settings
from vroegsignaal.cli.app import app
from vroegsignaal.console import fail

matching_app = typer.Typer(help="The matching engine, offline.", no_args_is_help=True)
app.add_typer(matching_app, name="matching")


@matching_app.command("replay")
def matching_replay(
    policy: Annotated[Path, typer.Option(help="The policy file to decide with.")],
    input_file: Annotated[
        Path,
        typer.Option(
            "--input",
            help="The events matching consumes, one JSON object a line: a SignalAccepted "
            'as on the topic, or {"event_type": "RegistrationWithdrawn", "event": {...}} '
            "(also SubjectErased, SubjectErasureApproved, SubjectShredded).",
        ),
    ],
    output: Annotated[Path, typer.Option(help="Where to write the decisions (JSON lines).")],
    keystore: Annotated[
        bool,
        typer.Option(help="Open sealed fields (wijk, family links) through the key store."),
    ] = True,
    until: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"],
            help="Run retention up to this moment (UTC) after the last event; without it, "
            "until nothing more is due.",
        ),
    ] = None,
) -> None:
    """Run the matching service's own use cases over a file of events, in memory, and
    write every decision: what a policy change would do. Time is the events' own, and
    every registration ends at its own moment. The same input gives the same output,
    byte for byte. The key store is only read; nothing opened is written out."""
    from services.matching.replay import ReplayInputError, read_events, replay, write_decisions
    from shared.keystore import KeyStore, KeyStoreError
    from shared.policy import Policy, PolicyError

    async def _run() -> int:
        rules = Policy.parse(policy.read_text(), source=str(policy))
        events = read_events(input_file)
        store = await KeyStore.open(Settings()) if keystore else None
        try:
            records = await replay(
                rules,
                events,
                store.open_sealed if store else None,
                until.replace(tzinfo=UTC) if until else None,
            )
        finally:
            if store is not None:
                await store.close()
        write_decisions(output, records)
        return len(records)

    try:
        written = asyncio.run(_run())
    except (PolicyError, ReplayInputError, KeyStoreError, OSError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"{written} decisions written to {output}")

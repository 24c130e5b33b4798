"""The matching engine, offline."""

from __future__ import annotations

import asyncio
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
        Path, typer.Option("--input", help="SignalAccepted events, one JSON object a line.")
    ],
    output: Annotated[Path, typer.Option(help="Where to write the decisions (JSON lines).")],
    keystore: Annotated[
        bool,
        typer.Option(help="Open sealed fields (family links) through the key store."),
    ] = True,
) -> None:
    """Run the matching rules over a file of accepted signals and write every decision:
    what a policy change would do. The same input gives the same output, byte for byte."""
    from services.matching.replay import ReplayInputError, read_events, replay, write_decisions
    from shared.contracts import SealedSignal, SignalAccepted
    from shared.keystore import KeyShredded, KeyStore, KeyStoreError
    from shared.policy import Policy, PolicyError

    async def _run() -> int:
        rules = Policy.parse(policy.read_text(), source=str(policy))
        events = read_events(input_file)
        store = await KeyStore.open(Settings()) if keystore else None

        async def open_sealed(event: SignalAccepted) -> SealedSignal | None:
            assert store is not None
            try:
                raw = await store.open_sealed(event.subject, event.event_id.bytes, event.sealed)
            except KeyShredded:
                return None
            return SealedSignal.model_validate_json(raw)

        try:
            records = await replay(rules, events, open_sealed if store else None)
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

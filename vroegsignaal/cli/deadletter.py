"""Dead letters: what could not be processed."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Annotated

import typer

from shared.contracts import (
    DeadLetter,
    Topics,
)
from shared.settings import Settings
from vroegsignaal.cli.app import app
from vroegsignaal.console import fail

deadletter_app = typer.Typer(
    help="Dead letters: what could not be processed, and a partner's originals back.",
    no_args_is_help=True,
)
app.add_typer(deadletter_app, name="deadletter")


@deadletter_app.command("open")
def deadletter_open(
    key: Annotated[
        Path,
        typer.Option(
            help="The dead-letter key's private half (deadletter-private.yaml): the "
            "operator's alone, never a service's."
        ),
    ],
    out: Annotated[Path, typer.Argument(help="Directory for the opened originals.")],
    partner: Annotated[
        str | None, typer.Option(help="Only the letters of this partner's topic.")
    ] = None,
) -> None:
    """Write the sealed originals of the dead letters still on the topic (a short
    retention) to OUT: one file per letter, `<letter id>.bin`, with `index.csv` (letter,
    partner, reason code, reason, size, truncated). Hand a partner only its own, over the
    covenant's secure channel: they hold the content of its rejected signals."""
    from shared.deadletter import DeadLetterKeyError, DeadLetterOpener
    from shared.kafka import read_to_end

    try:
        opener = DeadLetterOpener.load(key)
    except DeadLetterKeyError as problem:
        raise fail(str(problem)) from None
    settings = Settings()
    records = asyncio.run(read_to_end(settings, Topics(settings.topic_prefix).deadletter))
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    opened = skipped = 0
    with (out / "index.csv").open("w", newline="", encoding="utf-8") as index:
        rows = csv.writer(index)
        rows.writerow(["letter", "partner", "reason_code", "reason", "size", "truncated"])
        for record in records:
            try:
                letter = DeadLetter.model_validate_json(record.value or b"{}")
            except ValueError:
                skipped += 1  # a letter of an earlier version: it holds no sealed original
                continue
            if partner is not None and letter.partner_id != partner:
                continue
            try:
                original = opener.open(letter)
            except DeadLetterKeyError as problem:
                typer.echo(f"skipped: {problem}", err=True)
                original = None
            if original is None:
                skipped += 1
                continue
            path = out / f"{letter.event_id}.bin"
            path.write_bytes(original.value)
            path.chmod(0o600)
            rows.writerow(
                [letter.event_id, letter.partner_id or "", letter.reason_code, letter.reason,
                 letter.original_size, letter.original_truncated]
            )  # fmt: skip
            opened += 1
    typer.echo(f"opened {opened} dead letters into {out}; {skipped} without an original here")

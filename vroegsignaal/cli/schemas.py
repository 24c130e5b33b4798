"""The JSON Schemas of the event contracts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shared.contracts import (
    export_schemas,
)
from vroegsignaal.cli.app import app

schemas = typer.Typer(help="The JSON Schemas of the event contracts.", no_args_is_help=True)
app.add_typer(schemas, name="schemas")


@schemas.command("export")
def schemas_export(
    directory: Annotated[Path, typer.Argument(help="Where to write the JSON Schema files.")],
) -> None:
    """Write the JSON Schema of every event contract."""
    for path in export_schemas(directory):
        typer.echo(str(path))

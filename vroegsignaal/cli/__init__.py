"""The `vroegsignaal` command line: one module per command group, each registering on the
root app (`vroegsignaal.cli.app`). The dev-only commands (`dev`, `simulate`, `issuer`)
come with the dev-only package where it is installed; the production image has none."""

from __future__ import annotations

import importlib
import importlib.util
import sys

from vroegsignaal.cli import (  # noqa: F401  (each registers its commands)
    audit,
    deadletter,
    erasure,
    keystore,
    matching,
    roster,
    run,
    schemas,
    secrets,
)
from vroegsignaal.cli.app import app
from vroegsignaal.partner.cli import partner_app

app.add_typer(partner_app, name="partner")

DEV_COMMANDS = "vroegsignaal.dev.cli"
if importlib.util.find_spec("vroegsignaal.dev") is not None:
    importlib.import_module(DEV_COMMANDS)  # registers dev, simulate and issuer

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)

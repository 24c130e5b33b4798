"""The `vroegsignaal` command line: one module per command group, each registering on
the root app (`vroegsignaal.cli.app`)."""

from __future__ import annotations

import sys

from vroegsignaal.cli import (  # noqa: F401  (each registers its commands)
    audit,
    deadletter,
    dev,
    erasure,
    keystore,
    matching,
    roster,
    schemas,
    secrets,
)
from vroegsignaal.cli.app import app
from vroegsignaal.issuer_cli import issuer_app
from vroegsignaal.partner.cli import partner_app

app.add_typer(partner_app, name="partner")
app.add_typer(issuer_app, name="issuer")

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)

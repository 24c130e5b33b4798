"""The one way a command ends on a problem: its message, which names the fix, on stderr
in the command's language ("error:" / "fout:"), and exit status 1. Never a stack trace."""

from __future__ import annotations

import typer

from shared.i18n import _


def fail(message: str) -> typer.Exit:
    """Print `message` as the command's error and return the Exit to raise."""
    typer.secho(_("error: {message}").format(message=message), fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)

"""The root of the `vroegsignaal` command line; each command group registers on it."""

from __future__ import annotations

import typer

from shared.i18n import ENVIRONMENT, UnknownLanguage, choose

app = typer.Typer(
    help="vroegsignaal: early signals for youth care, privacy by design.", no_args_is_help=True
)


@app.callback()
def operators_read_english() -> None:
    """The operators' commands speak English unless VS_LANGUAGE says otherwise; the
    partner commands choose Dutch by default (their own --language)."""
    import os

    try:
        choose(os.environ.get(ENVIRONMENT) or "en")
    except UnknownLanguage:
        choose("en")

"""`vroegsignaal issuer`: the local demo OIDC issuer, for make run and tests only."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from shared.settings import REPO_ROOT, get_settings
from vroegsignaal.console import fail
from vroegsignaal.provision.errors import StackError

issuer_app = typer.Typer(
    help="The local demo OIDC issuer (make run and tests only).", no_args_is_help=True
)

UsersFile = Annotated[
    Path,
    typer.Option("--users-file", envvar="VS_DEMO_USERS_FILE", help="The demo users (YAML)."),
]
DEFAULT_USERS_FILE = REPO_ROOT / "config" / "demo-users.yaml"


@issuer_app.command("serve")
def issuer_serve(users_file: UsersFile = DEFAULT_USERS_FILE) -> None:
    """Run the demo issuer in the foreground: pick a demo user in the browser, no password."""
    from vroegsignaal.dev.stack.issuer import serve

    settings = get_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        serve(settings, users_file)
    except StackError as exc:
        raise fail(str(exc)) from None


@issuer_app.command("token")
def issuer_token(
    sub: Annotated[str, typer.Argument(help="The demo user, e.g. jgt-noord-1.")],
    users_file: UsersFile = DEFAULT_USERS_FILE,
) -> None:
    """Print an access token for a demo user, for curl and scripts (no browser)."""
    from vroegsignaal.dev.stack.issuer import load_demo_users, mint_token

    settings = get_settings()
    if settings.issuer_key_file is None:
        raise fail("VS_ISSUER_KEY_FILE is not set: name the signing key of the running demo issuer")
    try:
        users = load_demo_users(users_file)
        if sub not in users:
            raise fail(f"no demo user {sub!r} in {users_file}; there are: {', '.join(users)}")
        token = mint_token(
            settings.issuer_key_file, settings.oidc_issuer, settings.oidc_audience, users[sub]
        )
    except StackError as exc:
        raise fail(str(exc)) from None
    typer.echo(token)

"""The dev-only commands: the local stack (dev up/down/prepare/mail), the simulated
municipality (simulate) and the demo OIDC issuer (issuer). Registered on the root app only
where this package is installed (`vroegsignaal.cli`); the production image has none of them."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from services.intake.domain import PartnerRegistryError
from shared.settings import Settings
from vroegsignaal.cli.app import app
from vroegsignaal.console import fail
from vroegsignaal.dev.issuer_cli import issuer_app
from vroegsignaal.provision.errors import StackError

dev = typer.Typer(
    help="The local stack: Kafka, PostgreSQL, the services, a simulated municipality.",
    no_args_is_help=True,
)
app.add_typer(dev, name="dev")


@dev.command("mail")
def dev_mail(
    maildir: Annotated[Path, typer.Argument(help="Where the received e-mail is kept (Maildir)")],
    listen: Annotated[str, typer.Option(help="host:port to listen on")] = "127.0.0.1:8025",
) -> None:
    """A local SMTP server (aiosmtpd) for the dev stack: every e-mail lands in a Maildir."""
    try:
        from aiosmtpd.main import main as smtpd
    except ImportError:
        raise fail(
            "aiosmtpd is missing: install the local extra (pip install 'vroegsignaal[local]')"
        ) from None

    smtpd(["-n", "-l", listen, "-c", "aiosmtpd.handlers.Mailbox", str(maildir)])


@dev.command("up")
def dev_up(
    rate: Annotated[float, typer.Option(help="Simulated signals per second.")] = 2.0,
    bad_every: Annotated[
        int, typer.Option(help="Send a malformed message every N (0: never).")
    ] = 50,
    image: Annotated[
        str | None,
        typer.Option(
            help="Run the five services in containers of this image (Docker), e.g. one "
            "built by deploy/tools/local-image.sh; the rest stays local processes."
        ),
    ] = None,
) -> None:
    """Start everything in the foreground; Ctrl-C stops it all. Data survives a restart."""
    from shared.db import DatabaseUnavailableError
    from shared.kafka import BrokerUnavailableError
    from vroegsignaal.dev import devstack

    try:
        devstack.up(Settings(), rate=rate, bad_every=bad_every, image=image)
    except (
        StackError,
        PartnerRegistryError,
        BrokerUnavailableError,
        DatabaseUnavailableError,
    ) as exc:
        raise fail(str(exc)) from None


@dev.command("down")
def dev_down() -> None:
    """Stop Kafka, PostgreSQL and services left running by a killed 'dev up'."""
    from vroegsignaal.dev.devstack import DATA_DIR
    from vroegsignaal.dev.stack.local import stop_leftovers

    stopped = stop_leftovers(DATA_DIR)
    typer.echo("stopped: " + ", ".join(stopped) if stopped else "nothing was left running")


@dev.command("prepare")
def dev_prepare() -> None:
    """Check Java, resolve Kafka's jars and Keycloak's server (the tests' identity
    provider) once, so later starts need no network."""

    from vroegsignaal.dev.stack.kafka import ensure_jars, java_binary
    from vroegsignaal.dev.stack.keycloak import ensure_keycloak

    try:
        java_binary()
        if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            typer.echo("KAFKA_BOOTSTRAP_SERVERS is set: no local Kafka needed")
        else:
            typer.echo(f"Kafka jars in {ensure_jars()}")
        typer.echo(f"Keycloak in {ensure_keycloak()}")
    except StackError as exc:
        raise fail(str(exc)) from None


@app.command("simulate")
def simulate(
    secrets_dir: Annotated[
        Path,
        typer.Option(envvar="VS_PARTNER_SECRETS", help="The directory of partner configurations."),
    ],
    rate: Annotated[float, typer.Option(help="Signals per second.")] = 2.0,
    count: Annotated[
        int | None, typer.Option(help="Stop after this many (default: never).")
    ] = None,
    families: Annotated[int, typer.Option(help="Synthetic families in the municipality.")] = 2000,
    at_risk: Annotated[int, typer.Option(help="Children that draw most of the signals.")] = 60,
    bad_every: Annotated[
        int, typer.Option(help="Send a malformed message every N (0: never).")
    ] = 0,
    seed: Annotated[int | None, typer.Option(help="Seed for a reproducible run.")] = None,
) -> None:
    """Run the simulated municipality: partners keep registering synthetic concerns."""
    from vroegsignaal.dev import simulator

    logging.basicConfig(level=logging.WARNING)
    try:
        sent = asyncio.run(
            simulator.run(
                Settings(),
                secrets_dir=secrets_dir,
                rate=rate,
                count=count,
                families=families,
                at_risk=at_risk,
                bad_every=bad_every,
                seed=seed,
            )
        )
    except KeyboardInterrupt:
        return
    typer.echo(f"sent {sent} messages")


app.add_typer(issuer_app, name="issuer")

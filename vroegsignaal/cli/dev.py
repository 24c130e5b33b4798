"""The local stack and the services: dev up/down/prepare/mail, serve, simulate, topics, migrate."""

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
from vroegsignaal.stack.errors import StackError

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
    from aiosmtpd.main import main as smtpd

    smtpd(["-n", "-l", listen, "-c", "aiosmtpd.handlers.Mailbox", str(maildir)])


@dev.command("up")
def dev_up(
    rate: Annotated[float, typer.Option(help="Simulated signals per second.")] = 2.0,
    bad_every: Annotated[
        int, typer.Option(help="Send a malformed message every N (0: never).")
    ] = 50,
) -> None:
    """Start everything in the foreground; Ctrl-C stops it all. Data survives a restart."""
    from shared.db import DatabaseUnavailableError
    from shared.kafka import BrokerUnavailableError
    from vroegsignaal import devstack

    try:
        devstack.up(Settings(), rate=rate, bad_every=bad_every)
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
    from vroegsignaal.devstack import DATA_DIR
    from vroegsignaal.stack.local import stop_leftovers

    stopped = stop_leftovers(DATA_DIR)
    typer.echo("stopped: " + ", ".join(stopped) if stopped else "nothing was left running")


@dev.command("prepare")
def dev_prepare() -> None:
    """Check Java and resolve Kafka's jars once, so later starts need no network."""

    from vroegsignaal.stack.kafka import ensure_jars, java_binary

    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        typer.echo("KAFKA_BOOTSTRAP_SERVERS is set: no local Kafka needed")
        return
    try:
        java_binary()
        typer.echo(f"Kafka jars in {ensure_jars()}")
    except StackError as exc:
        raise fail(str(exc)) from None


@app.command("serve")
def serve(
    service: Annotated[str, typer.Argument(help="intake, matching, notification or audit")],
) -> None:
    """Run one service in the foreground (what each container runs)."""
    from shared.keystore import KeyStoreError
    from vroegsignaal.services import SERVICES
    from vroegsignaal.services import serve as run_service

    if service not in SERVICES:
        raise fail(f"unknown service {service!r}; choose one of: {', '.join(SERVICES)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        run_service(service, Settings())
    except (PartnerRegistryError, KeyStoreError, OSError, ValueError) as exc:
        # A broken policy, roster, webhooks file or Kafka login: one message with the fix.
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
    from vroegsignaal import simulator

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


@app.command("topics")
def topics() -> None:
    """Create every topic (internal and one per partner) with the configured partitions."""
    from services.intake.app import load_partners
    from shared.kafka import BrokerUnavailableError, ensure_topics

    settings = Settings()
    try:
        created = asyncio.run(
            ensure_topics(settings, [p.partner_id for p in load_partners(settings)])
        )
    except (BrokerUnavailableError, PartnerRegistryError) as exc:
        raise fail(str(exc)) from None
    typer.echo("created: " + ", ".join(created) if created else "all topics exist")


@app.command("migrate")
def migrate() -> None:
    """Set up the database as an administrator (DATABASE_URL): one login role per process,
    the migration role owning every schema, the migrations, each role's grants. Run it
    before the services start (they never migrate). Passwords from VS_DATABASE_ROLES_FILE."""
    from shared.db import DatabaseUnavailableError
    from vroegsignaal.stack.database import load_passwords, provision

    settings = Settings()
    try:
        done = asyncio.run(
            provision(
                settings.database_url,
                load_passwords(settings.database_roles_file),
                settings.keystore_admin_database_url,
            )
        )
    except (DatabaseUnavailableError, OSError, StackError) as exc:
        raise fail(str(exc)) from None
    for schema, applied in done.items():
        typer.echo(f"{schema}: {', '.join(applied) if applied else 'up to date'}")

"""The services and their infrastructure: serve, topics, migrate (what the containers and
the migration job run)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

from services.intake.domain import PartnerRegistryError
from shared.settings import Settings
from vroegsignaal.cli.app import app
from vroegsignaal.console import fail
from vroegsignaal.provision.errors import StackError


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
    from vroegsignaal.provision.database import load_passwords, provision

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

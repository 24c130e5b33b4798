"""Running the partner producer from the command line: one session (broker, pseudonymiser
client) around whatever the partner asked for."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path

import httpx
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from shared.contracts import Topics
from shared.i18n import _
from shared.kafka import create_broker
from shared.settings import Settings
from shared.telemetry import configure_tracing
from vroegsignaal.partner.config import PartnerConfig
from vroegsignaal.partner.producer import PartnerProducer, Summary
from vroegsignaal.partner.rows import read_rows

Action = Callable[[PartnerProducer], Awaitable[Summary]]


def partner_broker(config: PartnerConfig, settings: Settings, client_id: str) -> KafkaBroker:
    """A broker (not started) that logs in as the partner, where its file gives a login."""
    settings = config.kafka_settings(settings)
    broker, _ = create_broker(
        settings,
        client_id=client_id,
        tracer_provider=configure_tracing(client_id, settings.instance_id, settings.trace_file),
        registry=CollectorRegistry(),
    )
    return broker


async def with_producer(config_path: Path, settings: Settings, action: Action) -> Summary:
    """Run `action` with a producer for the partner of `config_path`, then close it all."""
    config = PartnerConfig.load(config_path)
    broker = partner_broker(config, settings, f"partner-{config.partner_id}")
    try:
        await broker.start()
        async with httpx.AsyncClient(timeout=30) as http:
            return await action(
                PartnerProducer(config, broker, Topics(settings.topic_prefix), http)
            )
    finally:
        await broker.stop()


def send_with_progress(export: Path, today: date) -> Action:
    """Send an export, with a progress bar for long files."""

    async def send(producer: PartnerProducer) -> Summary:
        total = sum(1 for _ in read_rows(export))
        with Progress(
            TextColumn(_("sending")),
            BarColumn(),
            TextColumn(
                _("{done}/{total} rows").format(done="{task.completed}", total="{task.total}")
            ),
            TimeRemainingColumn(),
            transient=True,
        ) as progress:
            task = progress.add_task("send", total=total)
            return await producer.send_file(
                export,
                today=today,
                on_progress=lambda n: progress.advance(task, n),
                journal=producer.journal(export),
            )

    return send

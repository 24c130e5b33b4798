"""Sending one export file with a partner's configuration (what `partner send` runs)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from shared.contracts import Topics, WithdrawalReason
from shared.kafka import create_broker
from shared.settings import Settings
from shared.telemetry import configure_tracing
from vroegsignaal.partner.config import PartnerConfig
from vroegsignaal.partner.producer import PartnerProducer, Summary
from vroegsignaal.partner.rows import read_rows


async def send_export(
    export: Path,
    config_path: Path,
    settings: Settings,
    *,
    today: date,
    withdraw: WithdrawalReason | None = None,
    erase: bool = False,
    report: bool = False,
) -> Summary:
    config = PartnerConfig.load(config_path)
    total = sum(1 for _ in read_rows(export))
    broker, _ = create_broker(
        settings,
        client_id=f"partner-{config.partner_id}",
        tracer_provider=configure_tracing(
            f"partner-{config.partner_id}", settings.instance_id, settings.trace_file
        ),
        registry=CollectorRegistry(),
    )
    await broker.start()
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            producer = PartnerProducer(config, broker, Topics(settings.topic_prefix), http)
            if erase:
                return await producer.erase_file(export)
            if report:
                return await producer.request_reports(export)
            if withdraw is not None:
                return await producer.withdraw_file(export, withdraw, today=today)
            with Progress(
                TextColumn("sending"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} rows"),
                TimeRemainingColumn(),
                transient=True,
            ) as progress:
                task = progress.add_task("send", total=total)
                return await producer.send_file(
                    export,
                    today=today,
                    on_progress=lambda n: progress.advance(task, n),
                )
    finally:
        await broker.stop()

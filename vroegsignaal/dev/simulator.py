"""A simulated municipality: partner organisations that keep registering concerns,
each through the real partner producer with its own signing key and credential.

Children, parents and workers are synthetic; BSNs come from the block reserved for test
persons and pass the elfproef. Siblings share parents and a household. A small share of
children draws most signals, so matches appear within a minute. Optionally every n-th
message is malformed, to show the dead-letter path.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka.errors import KafkaTimeoutError
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry

from services.intake.app import load_partners
from shared.contracts import Category, Topics, WorkerContact, month_of
from shared.kafka import create_broker
from shared.settings import Settings
from shared.telemetry import configure_tracing
from vroegsignaal.partner.bsn import synthetic_bsns
from vroegsignaal.partner.config import PartnerConfig
from vroegsignaal.partner.producer import PartnerProducer, Summary
from vroegsignaal.partner.rows import SourceRow

WIJKEN = tuple(f"WK0999{n:02d}" for n in range(1, 9))
FIRST_NAMES = ("Anouk", "Bram", "Chaima", "Daan", "Emre", "Fleur", "Gijs", "Hanna", "Ilse", "Joris")
log = logging.getLogger(__name__)
TICK_SECONDS = 0.2  # at most five batches a second, however high the rate
SEND_TRIES = 8
LAST_NAMES = ("de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "Mulder", "Bos")


@dataclass(frozen=True)
class Child:
    bsn: str
    parents: tuple[str, ...]
    household: str
    wijk: str
    born: date


@dataclass(frozen=True)
class Worker:
    partner_id: str
    contact: WorkerContact


class Municipality:
    """Synthetic families and partner workers, deterministic for a given seed."""

    def __init__(
        self, partner_ids: list[str], *, families: int, at_risk: int, seed: int | None
    ) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - simulation, not security
        today = datetime.now(UTC).date()
        bsns = iter(synthetic_bsns(families * 4, self._rng))
        self.children: list[Child] = []
        for family in range(families):
            parents = tuple(next(bsns) for _ in range(self._rng.choice((1, 2))))
            wijk = self._rng.choice(WIJKEN)
            for _ in range(self._rng.choice((1, 1, 2))):
                self.children.append(
                    Child(
                        bsn=next(bsns),
                        parents=parents,
                        household=f"HH-{family:06d}",
                        wijk=wijk,
                        born=today - timedelta(days=self._rng.randint(100, 22 * 365)),
                    )
                )
        self.at_risk = self.children[:at_risk]
        self.workers = [
            Worker(
                pid,
                WorkerContact(
                    worker_id=f"{pid}-{n}",
                    display_name=f"{self._rng.choice(FIRST_NAMES)} {self._rng.choice(LAST_NAMES)}",
                    email=f"{pid}-{n}@voorbeeldrade.example",
                ),
            )
            for pid in partner_ids
            for n in range(1, 4)
        ]

    def next_row(self) -> tuple[str, SourceRow]:
        pool = self.at_risk if self._rng.random() < 0.7 else self.children
        child = self._rng.choice(pool)
        worker = self._rng.choice(self.workers)
        born = child.born
        return worker.partner_id, SourceRow(
            line=0,
            child_bsn=child.bsn,
            parent_bsns=child.parents,
            household_id=child.household,
            age_limit_month=month_of(date(born.year + 23, born.month, 1)),
            category=self._rng.choice(list(Category)),
            wijk=child.wijk,
            registered_at=datetime.now(UTC),
            worker=worker.contact,
        )


async def _sent(producer: PartnerProducer, rows: list[SourceRow], summary: Summary) -> None:
    """One partner's batch, sent again while Kafka does not take it in time (a broker
    busy under a backlog), as a partner runs `partner send` again: the rows keep their
    event ids, so intake takes each once."""
    for attempt in range(1, SEND_TRIES + 1):
        try:
            await producer.send_rows(rows, summary)
            return
        except KafkaTimeoutError:
            if attempt == SEND_TRIES:
                raise
            log.warning("a partner's batch timed out at Kafka (try %d); sending it again", attempt)
            await asyncio.sleep(min(30.0, 2.0**attempt))


async def run(
    settings: Settings,
    *,
    secrets_dir: Path,
    rate: float,
    count: int | None,
    families: int,
    at_risk: int,
    bad_every: int,
    seed: int | None,
) -> int:
    """Publish signals at `rate` per second (forever when count is None); return how many."""
    partner_ids = [p.partner_id for p in load_partners(settings)]
    town = Municipality(partner_ids, families=families, at_risk=at_risk, seed=seed)
    topics = Topics(settings.topic_prefix)
    tracer_provider = configure_tracing("simulator", settings.instance_id, settings.trace_file)
    sent = 0
    summary = Summary()
    # Each simulated partner logs in to Kafka as itself (its own topic only), as a real one.
    brokers: dict[str, KafkaBroker] = {}
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            producers = {}
            for pid in partner_ids:
                config = PartnerConfig.load(secrets_dir / f"{pid}.yaml")
                brokers[pid], _ = create_broker(
                    config.kafka_settings(settings),
                    client_id=f"simulator-{pid}",
                    tracer_provider=tracer_provider,
                    registry=CollectorRegistry(),
                )
                await brokers[pid].start()
                access = config.pseudonymiser.model_copy(update={"url": settings.pseudonymiser_url})
                producers[pid] = PartnerProducer(
                    config.model_copy(update={"pseudonymiser": access}), brokers[pid], topics, http
                )
            # Paced by the clock, not by sleeping after each send: every tick sends what
            # is due since the start, in one batch per partner, so the rate holds however
            # long a send takes (and a slow stack shows as lag, not as a slower load).
            started = time.monotonic()
            while count is None or sent < count:
                tick = time.monotonic()
                due = int((tick - started) * rate) + 1
                if count is not None:
                    due = min(due, count)
                batches: dict[str, list[SourceRow]] = {}
                malformed: list[str] = []
                while sent < due:
                    sent += 1
                    if bad_every and sent % bad_every == 0:
                        malformed.append(partner_ids[sent % len(partner_ids)])
                    else:
                        partner, row = town.next_row()
                        batches.setdefault(partner, []).append(row)
                await asyncio.gather(
                    *(_sent(producers[p], rows, summary) for p, rows in batches.items()),
                    *(
                        brokers[p].publish(
                            b'{"schema_version": 1, "not": "a signal"', topics.partner(p)
                        )
                        for p in malformed
                    ),
                )
                next_at = max(started + sent / rate, tick + TICK_SECONDS)
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        for broker in brokers.values():
            await broker.stop()
    return sent

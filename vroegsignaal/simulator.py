"""A simulated municipality: partner organisations that keep registering concerns.

Children are synthetic and, until the partner producer with oblivious pseudonymisation
exists, are represented by random 256-bit pseudonyms. A small share of children draws
most signals, so matches appear within a minute. Optionally every n-th message is
malformed, to show the dead-letter path.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from prometheus_client import CollectorRegistry

from services.intake.app import load_partners
from shared.contracts import Category, SignalRegistered, Topics, WorkerContact
from shared.kafka import create_broker
from shared.settings import Settings
from shared.telemetry import configure_tracing

WIJKEN = tuple(f"WK0999{n:02d}" for n in range(1, 9))
FIRST_NAMES = ("Anouk", "Bram", "Chaima", "Daan", "Emre", "Fleur", "Gijs", "Hanna", "Ilse", "Joris")
LAST_NAMES = ("de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "Mulder", "Bos")


@dataclass(frozen=True)
class Child:
    subject: str
    wijk: str
    age_cutoff: date


@dataclass(frozen=True)
class Worker:
    partner_id: str
    organisation: str
    contact: WorkerContact


class Municipality:
    """Synthetic children and partner workers, deterministic for a given seed."""

    def __init__(
        self, settings: Settings, *, children: int, at_risk: int, seed: int | None
    ) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - simulation, not security
        today = datetime.now(UTC).date()
        self.children = [
            Child(
                subject=self._rng.randbytes(32).hex()
                if seed is not None
                else secrets.token_hex(32),
                wijk=self._rng.choice(WIJKEN),
                age_cutoff=today + timedelta(days=self._rng.randint(200, 23 * 365)),
            )
            for _ in range(children)
        ]
        self.at_risk = self.children[:at_risk]
        self.workers: list[Worker] = []
        for partner in load_partners(settings):
            for n in range(1, 4):
                worker_id = f"{partner.partner_id}-{n}"
                name = f"{self._rng.choice(FIRST_NAMES)} {self._rng.choice(LAST_NAMES)}"
                self.workers.append(
                    Worker(
                        partner.partner_id,
                        partner.organisation,
                        WorkerContact(
                            worker_id=worker_id,
                            display_name=name,
                            email=f"{worker_id}@voorbeeldrade.example",
                        ),
                    )
                )

    def next_signal(self) -> SignalRegistered:
        pool = self.at_risk if self._rng.random() < 0.7 else self.children
        child = self._rng.choice(pool)
        worker = self._rng.choice(self.workers)
        return SignalRegistered(
            partner_id=worker.partner_id,
            subject=child.subject,
            organisation=worker.organisation,
            worker=worker.contact,
            category=self._rng.choice(list(Category)),
            wijk=child.wijk,
            registered_at=datetime.now(UTC),
            age_cutoff=child.age_cutoff,
            event_id=uuid.UUID(int=self._rng.getrandbits(128), version=4),
        )


async def run(
    settings: Settings,
    *,
    rate: float,
    count: int | None,
    children: int,
    at_risk: int,
    bad_every: int,
    seed: int | None,
) -> int:
    """Publish signals at `rate` per second (forever when count is None); return how many."""
    town = Municipality(settings, children=children, at_risk=at_risk, seed=seed)
    topics = Topics(settings.topic_prefix)
    broker, _ = create_broker(
        settings,
        client_id="simulator",
        tracer_provider=configure_tracing("simulator", settings.instance_id, settings.trace_file),
        registry=CollectorRegistry(),
    )
    sent = 0
    await broker.start()
    try:
        while count is None or sent < count:
            sent += 1
            if bad_every and sent % bad_every == 0:
                partner = town.workers[sent % len(town.workers)].partner_id
                await broker.publish(
                    b'{"schema_version": 1, "not": "a signal"', topics.partner(partner)
                )
            else:
                signal = town.next_signal()
                await broker.publish(
                    signal.to_bytes(),
                    topics.partner(signal.partner_id),
                    key=signal.subject.encode(),
                    headers={"content-type": "application/json"},
                )
            await asyncio.sleep(1.0 / rate)
    finally:
        await broker.stop()
    return sent

"""Two matching instances consuming concurrently against the real broker and database:
siblings on different partitions, clusters merging under both; no lost merge, no double
match."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.contracts import OrganisationCategory, SealedSignal, SignalAccepted, Topics
from shared.keystore import KeyStore
from shared.settings import Settings
from tests.conftest import eventually
from tests.e2e.conftest import service_env, wait_ready
from tests.factories import pseudonym, worker
from tests.kafka_tools import group_lag, login, stable_members
from vroegsignaal.dev.stack.procs import free_port
from vroegsignaal.provision.secrets import Secrets

pytestmark = pytest.mark.e2e

FAMILIES = 12
REGISTERED = "vroegsignaal_matching_registrations_total"
ORG = {
    "school": OrganisationCategory.ONDERWIJS,
    "jgz": OrganisationCategory.JGZ,
    "gp": OrganisationCategory.HUISARTS,
}


@pytest.fixture
def two_matchers(settings: Settings, secrets: Secrets, tmp_path: Path) -> Iterator[list[str]]:
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    logs: list[Path] = []
    for n in (1, 2):
        port = free_port()
        env = service_env(settings, tmp_path / "traces.jsonl", secrets, "matching")
        env.update({"VS_MATCHING_PORT": str(port), "VS_INSTANCE_ID": f"matching-{n}"})
        log = tmp_path / f"matching-{n}.log"
        with log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "vroegsignaal", "serve", "matching"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        logs.append(log)
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url, proc, log in zip(urls, procs, logs, strict=True):
            wait_ready(url, proc, log)
        yield urls
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)


async def test_two_instances_lose_no_merge_and_raise_no_double_match(
    settings: Settings, two_matchers: list[str]
) -> None:
    topics = Topics(settings.topic_prefix)
    keystore = await KeyStore.open(settings)
    events: list[SignalAccepted] = []
    families = []
    now = datetime.now(UTC)

    async def accepted(subject: str, org: str, parents: list[str]) -> SignalAccepted:
        event_id = uuid.uuid4()
        personal = SealedSignal(
            worker=worker(f"{org}-{subject[:6]}"), wijk="WK099902", parents=parents
        )
        return SignalAccepted(
            event_id=event_id,
            signal_id=event_id,
            partner_id=f"{org}-partner",
            subject=subject,
            organisation=org,
            organisation_category=ORG[org],
            registered_at=now - timedelta(minutes=random.randint(1, 500)),
            age_limit_month="2040-01",
            sealed=await keystore.seal(
                subject, event_id.bytes, personal.model_dump_json().encode(), create=True
            ),
        )

    try:
        for _ in range(FAMILIES):
            a, b, c, mother, father = (pseudonym() for _ in range(5))
            families.append((a, b, c))
            # a and b are linked only through c, who arrives among them in any order.
            events += [
                await accepted(a, "school", [mother]),
                await accepted(a, "jgz", [mother]),
                await accepted(b, "jgz", [father]),
                await accepted(c, "gp", [mother, father]),
            ]
    finally:
        await keystore.close()
    random.shuffle(events)
    group = f"{settings.topic_prefix}vroegsignaal-matching"

    async def both_consuming() -> bool:
        return await stable_members(settings, group) == 2

    await eventually(both_consuming, timeout=60)
    producer = AIOKafkaProducer(**login(settings), linger_ms=5)
    await producer.start()
    try:
        for e in events:
            await producer.send(topics.accepted, e.to_bytes(), key=e.subject.encode())
        await producer.flush()
    finally:
        await producer.stop()

    async def caught_up() -> bool:
        return await group_lag(settings, group, [topics.accepted]) == 0

    await eventually(caught_up, timeout=120)
    conn = await asyncpg.connect(settings.database_url)
    try:
        for a, b, c in families:
            roots = await conn.fetch(
                "SELECT DISTINCT cluster FROM matching.family_nodes WHERE node = ANY($1)",
                [f"s:{a}", f"s:{b}", f"s:{c}"],
            )
            assert len(roots) == 1, "a merge was lost: the siblings sit in two clusters"
            members = await conn.fetchval(
                "SELECT count(*) FROM matching.match_participants p"
                " JOIN matching.matches m USING (match_id)"
                " WHERE m.kind = 'family' AND m.status = 'open' AND m.key = $1",
                roots[0]["cluster"],
            )
            assert members == 4  # every registration of the family takes part
        by_kind = dict(
            await conn.fetch(
                "SELECT kind || '/' || status, count(*) FROM matching.matches GROUP BY 1"
            )
        )
        assert by_kind == {"family/open": FAMILIES, "person/open": FAMILIES}
    finally:
        await conn.close()
    # Both instances did part of the work.
    async with httpx.AsyncClient(timeout=5) as client:
        for url in two_matchers:
            metrics = (await client.get(f"{url}/metrics")).text.splitlines()
            stored = next(x for x in metrics if x.startswith(f"{REGISTERED} "))
            assert float(stored.split()[1]) > 0

"""Wijk trends on the running matching service: distinct children per wijk x theme week,
a trend event when a theme rises above its baseline, and cells under k suppressed."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.matching.trends import window_of
from shared.auth import Role
from shared.contracts import (
    Category,
    OrganisationCategory,
    Topics,
    WijkThemeObserved,
    WijkTrendRaised,
)
from shared.settings import Settings
from tests.conftest import auth, eventually
from tests.e2e.test_pipeline import get_json
from tests.kafka_tools import read_topic

pytestmark = pytest.mark.e2e


@pytest.fixture
def extra_env() -> dict[str, dict[str, str]]:
    return {"matching": {"VS_COUNTS_INTERVAL_SECONDS": "0.5"}}


async def test_a_rising_theme_is_a_trend_and_small_cells_stay_hidden(
    settings: Settings, services: dict[str, str]
) -> None:
    topics = Topics(settings.topic_prefix)
    today = datetime.now(UTC).date()
    wijk = "WK099907"

    def seen(theme: Category, token: str) -> WijkThemeObserved:
        return WijkThemeObserved(
            wijk=wijk,
            theme=theme,
            observed_on=today,
            window=window_of(today),
            child_token=token,
            organisation_category=OrganisationCategory.ONDERWIJS,
        )

    children = [secrets.token_hex(16) for _ in range(12)]
    events = [seen(Category.PESTEN, t) for t in children]
    events += [seen(Category.PESTEN, children[0])]  # the same child again: counted once
    events += [seen(Category.ARMOEDE, t) for t in children[:9]]  # nine: under k
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for e in events:
            await producer.send_and_wait(topics.wijk_themes, e.to_bytes(), key=wijk.encode())
    finally:
        await producer.stop()

    # The counts are for team leads and the regie role, each read logged; nobody else.
    trends_api = f"{services['matching']}/trends?wijk={wijk}"
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(trends_api)).status_code == 401
        worker = auth(settings, "juf-anouk", Role.WORKER)
        assert (await client.get(trends_api, headers=worker)).status_code == 403
        regie = auth(settings, "regie-voorbeeldrade")
        assert (await client.get(trends_api, headers=regie)).status_code == 200

    async def counted() -> dict[str, object] | None:
        cells = (await get_json(trends_api, headers=auth(settings, "teamlead-zuid")))["cells"]
        by_theme = {c["theme"]: c for c in cells}
        ready = by_theme.get("pesten", {}).get("children") == 12
        return by_theme if ready else None

    by_theme = await eventually(counted, timeout=60)
    assert by_theme["pesten"]["trend"] is True
    assert "armoede" not in by_theme  # nine children: under k, not shown at all

    # The trend (keyed by wijk) and the counts (keyed by event) lie on any partitions:
    # read until both kinds are there.
    def kinds(records: list[Any]) -> set[bytes]:
        return {dict(r.headers)["vs-event-type"] for r in records}

    published = await read_topic(
        settings.kafka_bootstrap_servers,
        topics.trends,
        until=lambda rs: {b"WijkTrendRaised", b"WijkThemeCounted"} <= kinds(rs),
    )
    (trend,) = [
        json.loads(r.value)
        for r in published
        if dict(r.headers)["vs-event-type"] == WijkTrendRaised.__name__.encode()
    ]
    # No history: each past week counts as the middle of 0..k-1 (4.5), so the eleventh
    # child is the first improbable count (P(X >= 11 | 4.5) < 0.01, P(X >= 10) is not).
    assert (trend["wijk"], trend["theme"], trend["distinct_children"]) == (wijk, "pesten", 11)
    assert trend["baseline"] == 4.5
    assert "Poisson" in trend["test"]
    # Only cells of at least k leave matching, also in the periodic counts.
    assert all(b"armoede" not in r.value for r in published)

    # Every read of the counts is in the audit log, with who read them.
    async def reads_logged() -> bool:
        conn = await asyncpg.connect(settings.database_url)
        try:
            readers = await conn.fetch(
                "SELECT DISTINCT actor_id FROM audit.entries WHERE object_type = 'wijk-trends'"
            )
        finally:
            await conn.close()
        return {r["actor_id"] for r in readers} == {"teamlead-zuid", "regie-voorbeeldrade"}

    await eventually(reads_logged, timeout=30)

    # The team lead of the wijk's team sees the cell in the inbox; another team's does not.
    inbox = f"{services['notification']}/api/trends"

    async def charted() -> list[dict[str, object]]:
        cells = (await get_json(inbox, headers=auth(settings, "teamlead-zuid")))["cells"]
        return [c for c in cells if c["wijk"] == wijk and c["children"] == 12]

    # Twelve distinct children in the end; the trend was raised when the eleventh came.
    (cell,) = await eventually(charted, timeout=30)
    assert (cell["theme"], cell["trend"]) == ("pesten", True)
    other = await get_json(inbox, headers=auth(settings, "teamlead-noord"))
    assert wijk not in other["wijken"]
    assert all(c["wijk"] != wijk for c in other["cells"])

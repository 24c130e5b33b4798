"""Wijk trends on the running stack: partners' signals counted per wijk x theme week in
intake, only cells of at least k published (aggregates, on a schedule), a trend event when
a theme rises above its baseline, and the counts behind a login."""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import expect

from shared.auth import Role
from shared.contracts import Topics, WijkThemeCounted, WijkTrendRaised
from shared.policy import load_policy
from shared.settings import Settings
from tests.accessibility import assert_accessible
from tests.conftest import auth, eventually
from tests.e2e.conftest import Producers
from tests.e2e.test_inbox_browser import chromium, log_in
from tests.e2e.test_pipeline import export as write_export
from tests.e2e.test_pipeline import get_json, row, settings_today, settled
from tests.kafka_tools import read_all, read_topic
from vroegsignaal.partner.bsn import synthetic_bsns

pytestmark = pytest.mark.e2e

SCHOOL, JGZ = "school-de-regenboog", "jgz-voorbeeldrade"


@pytest.fixture
def extra_env() -> dict[str, dict[str, str]]:
    return {"matching": {"VS_COUNTS_INTERVAL_SECONDS": "0.5"}}


async def test_a_rising_theme_is_a_trend_and_small_cells_stay_hidden(
    settings: Settings, services: dict[str, str], partners: Producers, tmp_path: Path
) -> None:
    topics = Topics(settings.topic_prefix)
    k = load_policy(settings.policy_file).aggregates.k
    wijk = "WK099907"
    children = synthetic_bsns(21, random.Random())

    def signal(child: str, worker: str, theme: str) -> dict[str, str]:
        return {**row(child, "", worker, theme), "wijk": wijk, "household_id": ""}

    # 21 children with the same theme, nine of them also with another (under k), and one
    # of them again from another organisation: counted once.
    school = [signal(c, "juf-anouk", "pesten") for c in children]
    school += [signal(c, "juf-anouk", "armoede") for c in children[:9]]
    jgz = [signal(children[0], "jgz-fleur", "pesten")]
    for partner, rows in ((SCHOOL, school), (JGZ, jgz)):
        path = write_export(tmp_path / f"{partner}.csv", rows)
        assert (await partners(partner).send_file(path, today=settings_today())).sent == len(rows)

    # The counts are for team leads and the regie role, each read logged; nobody else.
    trends_api = f"{services['matching']}/trends?wijk={wijk}"
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(trends_api)).status_code == 401
        worker = auth(settings, "juf-anouk", Role.WORKER)
        assert (await client.get(trends_api, headers=worker)).status_code == 403
        regie = auth(settings, "regie-voorbeeldrade")
        assert (await client.get(trends_api, headers=regie)).status_code == 200

    # Everything counted and published: what left intake are counts of cells, each of at
    # least k and each at least k above the one before (no difference of two singles out
    # a child): no message per signal, no child token, nothing of the cell under k.
    await eventually(lambda: settled(settings), timeout=90)
    aggregates = await read_all(settings, topics.wijk_themes)
    assert {dict(r.headers)["vs-event-type"] for r in aggregates} == {b"WijkThemeCounted"}
    counts = [WijkThemeCounted.model_validate_json(r.value) for r in aggregates]
    assert {(c.wijk, c.theme.value) for c in counts} == {(wijk, "pesten")}
    pesten = [c.distinct_children for c in counts]
    assert pesten[0] >= k and all(b - a >= k for a, b in itertools.pairwise(pesten))
    # 21 children: a first count of 10 or 11 has a second at 20 or 21; one of 12 or more
    # has none (21 is less than k above it).
    last = pesten[-1]
    assert last >= 12 and last <= 21
    assert all(b"child_token" not in r.value and b"armoede" not in r.value for r in aggregates)

    async def counted() -> dict[str, object] | None:
        cells = (await get_json(trends_api, headers=auth(settings, "teamlead-zuid")))["cells"]
        by_theme = {c["theme"]: c for c in cells}
        ready = by_theme.get("pesten", {}).get("children") == last
        return by_theme if ready else None

    by_theme = await eventually(counted, timeout=60)
    assert by_theme["pesten"]["trend"] is True
    assert "armoede" not in by_theme  # nine children: under k, not shown at all

    # The trend (keyed by wijk) and the counts (keyed by event) lie on any partitions:
    # read until both kinds are there.
    def kinds(records: list[Any]) -> set[bytes]:
        return {dict(r.headers)["vs-event-type"] for r in records}

    published = await read_topic(
        settings,
        topics.trends,
        until=lambda rs: {b"WijkTrendRaised", b"WijkThemeCounted"} <= kinds(rs),
    )
    (trend,) = [
        json.loads(r.value)
        for r in published
        if dict(r.headers)["vs-event-type"] == WijkTrendRaised.__name__.encode()
    ]
    # No history: each past week counts as the middle of 0..k-1 (4.5), so eleven children
    # are the first improbable count (P(X >= 11 | 4.5) < 0.01, P(X >= 10) is not): the
    # trend came with the first published count of at least eleven.
    assert (trend["wijk"], trend["theme"]) == (wijk, "pesten")
    assert trend["distinct_children"] == next(c for c in pesten if c >= 11)
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
        return [c for c in cells if c["wijk"] == wijk and c["children"] == last]

    (cell,) = await eventually(charted, timeout=30)
    assert (cell["theme"], cell["trend"]) == ("pesten", True)
    other = await get_json(inbox, headers=auth(settings, "teamlead-noord"))
    assert wijk not in other["wijken"]
    assert all(c["wijk"] != wijk for c in other["cells"])

    # The chart the page shows: drawn by the service, the trend marked; only for those
    # who see the wijk's counts.
    chart = f"{inbox}/chart?wijk={wijk}&lang=nl"
    async with httpx.AsyncClient(timeout=10) as http:
        drawn = await http.get(chart, headers=auth(settings, "teamlead-zuid"))
        assert drawn.status_code == 200, drawn.text
        assert drawn.headers["content-type"].startswith("image/svg+xml")
        assert f"{last} ▲" in drawn.text and "pesten" in drawn.text and "<script" not in drawn.text
        for user, status in (("teamlead-noord", 404), ("jgt-zuid-1", 403)):
            refused = await http.get(chart, headers=auth(settings, user))
            assert refused.status_code == status, (user, refused.text)

    # On the page: the chart as an image with its text alternative, the same numbers in
    # a table beside it, in Dutch, and nothing an accessibility check objects to.
    async with chromium() as browser:
        page = await log_in(browser, services, "teamlead-zuid", "Rob Jansen", role="team_lead")
        await page.select_option("#trend-wijk", wijk)
        await expect(page.locator("#trend-image")).to_have_attribute(
            "alt", re.compile(f"wijk {wijk}")
        )
        table = page.locator("#trend-table")
        await expect(table.locator("th[scope=row]", has_text="pesten")).to_have_count(1)
        await expect(table).to_contain_text(f"{last} ▲ trend")
        await assert_accessible(page, "the wijk trends")

"""A data subject's access request, from the partner's side (the BSN never leaves it) to
the privacy officer's report built from the audit log."""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from shared.auth import Role
from shared.settings import Settings
from tests.accessibility import assert_accessible
from tests.conftest import auth, eventually
from tests.e2e.conftest import Producers
from tests.e2e.test_inbox_browser import chromium
from tests.e2e.test_pipeline import GP, JGZ, SCHOOL, export, get_json, row, settled
from vroegsignaal.partner.bsn import synthetic_bsns

pytestmark = pytest.mark.e2e


async def cli(settings: Settings, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vroegsignaal", *args,
        env={"DATABASE_URL": settings.database_url, "PATH": "/usr/bin:/bin",
             "VS_TOPIC_PREFIX": settings.topic_prefix, "VS_OPERATOR": "fg-jan"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_a_data_subject_gets_a_complete_report_without_the_bsn_leaving(
    settings: Settings, services: dict[str, str], partners: Producers, tmp_path: Path
) -> None:
    child, other = synthetic_bsns(2, random.Random())
    today = datetime.now(UTC).date()
    producer = partners

    await producer(SCHOOL).send_file(
        export(tmp_path / "s.csv", [row(child, "", "juf-anouk", "pesten")]), today=today
    )
    await producer(JGZ).send_file(
        export(
            tmp_path / "j.csv",
            [
                row(child, "", "jgz-fleur", "armoede"),
                {**row(other, "", "jgz-bos", "pesten"), "household_id": "HH-7"},
            ],
        ),
        today=today,
    )

    async def alerted() -> bool:
        summary = await get_json(f"{services['notification']}/alerts/summary")
        return bool(summary["open_matches"] == 1 and summary["alerts"] == 3)

    await eventually(alerted, timeout=60)

    async def logged() -> bool:
        rows = (await get_json(f"{services['audit']}/audit/summary"))["entries"]
        notified = sum(
            r["entries"]
            for r in rows
            if (r["source_system"], r["action"]) == ("notification", "notify")
        )
        # The two registering workers and the coordinator (the regie role follows a
        # coordinated match in its overview).
        return bool(notified == 3)

    # The report shows what the log holds when it is asked: wait for the alerts.
    await eventually(logged, timeout=60)
    requested = await producer(SCHOOL).request_reports(
        export(tmp_path / "request.csv", [{"child_bsn": child}])
    )
    (request_id,) = requested.request_ids

    async def reported() -> str | None:
        code, out = await cli(settings, "audit", "report", str(request_id), "--html",
                              str(tmp_path / "report.html"))  # fmt: skip
        return out if code == 0 else None

    out = await eventually(reported, timeout=60)
    report = json.loads(out)
    assert sorted(r["organisation"] for r in report["registrations"]) == [
        "Basisschool De Regenboog",
        "JGZ Voorbeeldrade",
    ]
    assert [m["kind"] for m in report["matches"]] == ["person"]
    assert report["matches"][0]["raised_at"] is not None
    told = sorted(t["worker"] for t in report["workers_told"])
    coordinator = [w for w in told if w.startswith("jgt-")]
    assert len(coordinator) == 1
    assert told == sorted(["jgz-fleur", "juf-anouk", *coordinator])
    assert "jgz-bos" not in out  # the other child's worker is not part of this report
    assert child not in out
    page = (tmp_path / "report.html").read_text()
    assert "JGZ Voorbeeldrade" in page
    assert "<h1>Inzagerapport van een betrokkene</h1>" in page  # Dutch unless asked
    assert child not in page

    # Reading the report is itself in the log, as the privacy officer who read it.
    async def read_logged() -> list[str]:
        found = await get_json(
            f"{services['audit']}/audit/v1/search?action=read&user=fg-jan",
            headers=auth(settings, "fg-voorbeeldrade"),
        )
        return [e["event"]["object_id"] for e in found["entries"]]

    assert str(request_id) in await eventually(read_logged, timeout=30)

    # The privacy officer reads and prints it on the audit page, without database access.
    async with chromium() as browser:
        browser_page = await (await browser.new_context()).new_page()
        await browser_page.goto(f"{services['audit']}/audit/ui/")
        await browser_page.click("#login-button")
        await browser_page.click('button[data-user="fg-voorbeeldrade"]')
        row_of = browser_page.locator(f'#reports tr[data-request="{request_id}"]')
        await row_of.get_by_role("button", name="Lezen").click()
        frame = browser_page.frame_locator("#report")
        await expect(frame.locator("body")).to_contain_text("JGZ Voorbeeldrade")
        await expect(frame.locator("body")).to_contain_text("Basisschool De Regenboog")
        # In the page's language, Dutch: headings, values and Amsterdam times.
        await expect(frame.locator("h1")).to_have_text("Inzagerapport van een betrokkene")
        await expect(frame.locator("body")).to_contain_text("Medewerkers die zijn geïnformeerd")
        await expect(frame.locator("body")).to_contain_text(
            re.compile(r"\d{1,2} (januari|februari|maart|april|mei|juni|juli|augustus|"
                       r"september|oktober|november|december) \d{4} \d{2}:\d{2}")
        )  # fmt: skip
        printing = browser_page.get_by_role("button", name="Dit verslag afdrukken")
        await expect(printing).to_be_visible()
        # The frame is the page's own (no scripts in it): printing it is allowed.
        assert await browser_page.evaluate(
            "typeof document.getElementById('report').contentWindow.print === 'function'"
            " && document.getElementById('report').contentDocument.body.innerText.length > 0"
        )
        assert child not in await browser_page.content()
        await assert_accessible(browser_page, "the audit page with an access report open")
    # As the API gives it: the same report the CLI printed; refused to anyone else.
    fg = auth(settings, "fg-voorbeeldrade")
    assert (
        await get_json(f"{services['audit']}/audit/v1/reports/{request_id}", headers=fg) == report
    )
    async with httpx.AsyncClient(timeout=10) as http:
        refused = await http.get(
            f"{services['audit']}/audit/v1/reports/{request_id}",
            headers=auth(settings, "jgt-noord-1"),
        )
    assert refused.status_code == 403

    async def read_on_the_page() -> list[Any] | None:
        found = await get_json(
            f"{services['audit']}/audit/v1/search?action=read&user=fg-voorbeeldrade&limit=500",
            headers=fg,
        )
        reads = [
            e for e in found["entries"]
            if e["event"]["object_type"] == "subject-report"
            and e["event"]["object_id"] == str(request_id)
        ]  # fmt: skip
        # Both reads (printable and JSON), which may reach the log in separate batches.
        return reads if len(reads) >= 2 else None

    await eventually(read_on_the_page, timeout=30)


WIJKTEAM, LEERPLICHT = "wijkteam-noord", "leerplicht-voorbeeldrade"


async def test_each_childs_report_tells_its_own_truth_in_merged_family_matches_and_erasure(
    settings: Settings, services: dict[str, str], partners: Producers, tmp_path: Path
) -> None:
    """Two families that merge, one child erased: every child's report is checked against
    what the scenario itself did (its own ground truth), not against the log."""
    a, b, c, d, e, parent = synthetic_bsns(6, random.Random())
    # How a failing assertion names a child: never by its (synthetic) BSN.
    name = dict(zip((a, b, c, d, e), "ABCDE", strict=True))
    today = datetime.now(UTC).date()

    def reg(child: str, worker: str, household: str, parents: str = "") -> dict[str, str]:
        return {**row(child, parents, worker, "pesten"), "household_id": household}

    async def send(partner: str, rows: list[dict[str, str]], name: str) -> None:
        summary = await partners(partner).send_file(export(tmp_path / name, rows), today=today)
        assert summary.sent == len(rows)

    async def summary(n_matches: int, n_family: int) -> bool:
        found = await get_json(f"{services['matching']}/matches/summary")
        return bool((found["open_matches"], found["open_family_matches"]) == (n_matches, n_family))

    # Ground truth, written down as the scenario goes: per child, the workers who
    # registered it, and per match the children in it and whether each one's part ended.
    workers = {a: {"juf-anouk"}, b: {"jgz-fleur"}, c: {"dokter-bos"}, d: {"wijk-sam"}}
    # Family one: A (school) and B (JGZ); family two: C (GP) and D (welfare).
    await send(SCHOOL, [reg(a, "juf-anouk", "HH-F", parent)], "a.csv")
    await send(JGZ, [reg(b, "jgz-fleur", "HH-F")], "b.csv")
    await eventually(lambda: summary(1, 1), timeout=60)
    await send(GP, [reg(c, "dokter-bos", "HH-G")], "c.csv")
    await send(WIJKTEAM, [reg(d, "wijk-sam", "HH-G")], "d.csv")
    await eventually(lambda: summary(2, 2), timeout=60)
    # E shares A's parent and C's household: the two families are one, the younger family
    # match ends (merged) and its children join the older one.
    await send(LEERPLICHT, [reg(e, "lp-kim", "HH-G", parent)], "e.csv")
    workers[e] = {"lp-kim"}
    await eventually(lambda: summary(1, 1), timeout=60)

    # Reads: a school worker views the family match (it shows every child's workers) and
    # reads her tasks (her own registration's only) — once notification has applied the
    # merge, so that the view shows all five children.
    await eventually(lambda: settled(settings), timeout=90)
    school_worker = auth(settings, "juf-anouk", Role.WORKER)
    inbox = f"{services['notification']}/api"
    alerts = (await get_json(f"{inbox}/alerts", headers=school_worker))["alerts"]
    family_match = next(x["match_id"] for x in alerts if x["kind"] == "family")
    await get_json(f"{inbox}/matches/{family_match}", headers=school_worker)
    await get_json(f"{inbox}/tasks", headers=school_worker)

    # B is erased: B's part in the family match ends; it goes on for the others.
    await partners(JGZ).erase_file(export(tmp_path / "erase.csv", [{"child_bsn": b}]))

    async def b_left() -> bool:
        found = await get_json(f"{services['matching']}/matches/summary")
        return bool(found["registrations"] == 4 and found["open_family_matches"] == 1)

    await eventually(b_left, timeout=60)
    await eventually(lambda: settled(settings), timeout=90)

    requested = await partners(SCHOOL).request_reports(
        export(tmp_path / "request.csv", [{"child_bsn": x} for x in (a, b, c, d, e)])
    )
    ids = dict(zip((a, b, c, d, e), requested.request_ids, strict=True))

    async def report_of(child: str) -> dict[str, Any] | None:
        code, out = await cli(settings, "audit", "report", str(ids[child]))
        return json.loads(out) if code == 0 else None

    reports = {x: await eventually(lambda x=x: report_of(x), timeout=60) for x in ids}

    def registrants(report: dict[str, Any]) -> set[str]:
        told = {t["worker"] for t in report["workers_told"]}
        return {w for w in told if not w.startswith(("jgt-", "regie-", "teamlead-"))}

    for child, report in reports.items():
        # Told about this child: only the workers who registered it (and coordinators
        # and the regie role), never a sibling's worker.
        assert registrants(report) == workers[child], name[child]
        assert child not in json.dumps(report)
        family = [m for m in report["matches"] if m["kind"] == "family"]
        assert [m["kind"] for m in report["matches"]] == ["family"] * len(family)
        kept = [m for m in family if m["match_id"] == family_match]
        assert len(kept) == 1, (name[child], family)
        # The family match ended for B only (erased); for the others it goes on.
        assert (kept[0]["ended_at"] is not None) == (child == b), name[child]
    # C and D also had the younger family match, which ended in the merge.
    for child in (c, d):
        (merged,) = [m for m in reports[child]["matches"] if m["match_id"] != family_match]
        assert merged["raised_at"] is not None and merged["ended_at"] is not None
    for child in (a, b, e):
        assert len(reports[child]["matches"]) == 1
    # A and B were in the match when it was raised; C, D and E joined it later.
    assert {x for x in ids if reports[x]["matches"][-1]["raised_at"]} >= {a, b}

    def reads(report: dict[str, Any]) -> set[tuple[str, str]]:
        return {(x["who"], x["what"]) for x in report["accesses"] if x["action"] == "read"}

    # The match view disclosed every child in it then; the task list only A's.
    for child in (a, b, c, d, e):
        assert ("juf-anouk", "match") in reads(reports[child]), name[child]
    assert ("juf-anouk", "inform-task-list") in reads(reports[a])
    assert all(("juf-anouk", "inform-task-list") not in reads(reports[x]) for x in (b, c, d, e))

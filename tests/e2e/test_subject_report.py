"""A data subject's access request, from the partner's side (the BSN never leaves it) to
the privacy officer's report built from the audit log."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.conftest import auth, eventually
from tests.e2e.conftest import Producers
from tests.e2e.test_pipeline import JGZ, SCHOOL, export, get_json, row
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
        return bool(summary["open_matches"] == 1 and summary["alerts"] == 4)

    await eventually(alerted, timeout=60)

    async def logged() -> bool:
        rows = (await get_json(f"{services['audit']}/audit/summary"))["entries"]
        notified = sum(
            r["entries"]
            for r in rows
            if (r["source_system"], r["action"]) == ("notification", "notify")
        )
        # The two registering workers, the coordinator and the regie role.
        return bool(notified == 4)

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
    assert told == sorted(["jgz-fleur", "juf-anouk", "regie-voorbeeldrade", *coordinator])
    assert "jgz-bos" not in out  # the other child's worker is not part of this report
    assert child not in out
    page = (tmp_path / "report.html").read_text()
    assert "JGZ Voorbeeldrade" in page
    assert child not in page

    # Reading the report is itself in the log, as the privacy officer who read it.
    async def read_logged() -> list[str]:
        found = await get_json(
            f"{services['audit']}/audit/v1/search?action=read&user=fg-jan",
            headers=auth(settings, "fg-voorbeeldrade"),
        )
        return [e["event"]["object_id"] for e in found["entries"]]

    assert str(request_id) in await eventually(read_logged, timeout=30)

"""Coordination over a match's life, through the real entrypoints: the roster changed with
the CLI (audited), the coordinator chosen by the stated rule, a move to a wijk of another
team (the new team takes over, everyone involved is told), and the end of the match."""

from __future__ import annotations

import asyncio
import random
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from shared.auth import Role
from shared.contracts import WithdrawalReason
from shared.settings import Settings
from tests.conftest import DEMO_USERS, auth, eventually
from tests.e2e.conftest import Producers
from tests.e2e.test_pipeline import GP, JGZ, SCHOOL, export, get_json, row
from vroegsignaal.dev.stack.issuer import load_demo_users
from vroegsignaal.partner.bsn import synthetic_bsns

pytestmark = pytest.mark.e2e


@pytest.fixture
def extra_env() -> dict[str, dict[str, str]]:
    return {"notification": {"VS_ESCALATION_INTERVAL_SECONDS": "0.5"}}


async def roster(settings: Settings, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vroegsignaal", "roster", *args,
        env={"DATABASE_URL": settings.database_url, "VS_TOPIC_PREFIX": settings.topic_prefix,
             "VS_OPERATOR": "beheer-jan", "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def inbox(services: dict[str, str], settings: Settings, user: str) -> list[Any]:
    demo = user in load_demo_users(DEMO_USERS)
    headers = auth(settings, user) if demo else auth(settings, user, Role.WORKER)
    alerts: list[Any] = (await get_json(f"{services['notification']}/api/alerts", headers=headers))[
        "alerts"
    ]
    return alerts


async def test_the_new_team_takes_over_and_everyone_is_told(
    settings: Settings, services: dict[str, str], partners: Producers, tmp_path: Path
) -> None:
    # The roster through its CLI: Fatima (JGT Zuid) is away; a new worker joins Zuid.
    code, out = await roster(settings, "deactivate", "jgt-zuid-1")
    assert code == 0, out
    code, out = await roster(
        settings, "add-worker", "jgt-zuid", "jgt-zuid-9", "--name", "Kees Dekker",
        "--email", "jgt-zuid-9@voorbeeldrade.example", "--category", "politie",
    )  # fmt: skip
    assert code == 0, out
    code, out = await roster(settings, "add-worker", "jgt-zuid", "jgt-zuid-9", "--name", "X",
                             "--email", "x@voorbeeldrade.example")  # fmt: skip
    assert code == 1 and "already on the roster" in out
    code, out = await roster(settings, "move-wijk", "WK099905", "geen-team")
    assert code == 1 and "no team 'geen-team'" in out
    code, out = await roster(settings, "move-wijk", "123456782", "jgt-zuid")
    assert code == 1 and "not a wijk code" in out
    code, out = await roster(settings, "show")
    assert code == 0 and '"user_id": "jgt-zuid-9"' in out

    child, _ = synthetic_bsns(2, random.Random())
    today = datetime.now(UTC).date()
    producer = partners

    files: dict[str, Path] = {}

    def registration(partner: str, worker: str, wijk: str) -> Path:
        """A partner's export, kept: a withdrawal names the same rows."""
        rows = [{**row(child, "", worker, "pesten"), "wijk": wijk}]
        files[partner] = export(tmp_path / f"{partner}.csv", rows)
        return files[partner]

    # A match in a wijk of JGT Noord: coordinated there.
    for partner, worker in ((SCHOOL, "juf-anouk"), (JGZ, "jgz-fleur")):
        await producer(partner).send_file(registration(partner, worker, "WK099902"), today=today)

    async def coordinated_in_noord() -> str | None:
        alerts = await inbox(services, settings, "juf-anouk")
        return alerts[0]["coordinator"]["worker_id"] if alerts else None

    first = await eventually(coordinated_in_noord, timeout=60)
    assert first in {"jgt-noord-1", "jgt-noord-2"}

    # The family moved: the GP registers the child in a wijk of JGT Zuid.
    await producer(GP).send_file(registration(GP, "dokter-bos", "WK099906"), today=today)

    async def transferred() -> list[Any] | None:
        told = await inbox(services, settings, "jgz-fleur")
        moved = [a for a in told if a["occasion"] == "transferred"]
        return moved or None

    (moved,) = await eventually(transferred, timeout=60)
    # The new team's coordinator, by the rule: Fatima is away, Kees is police (may
    # not coordinate), so Daan, the other active worker of Zuid.
    assert moved["coordinator"]["worker_id"] == "jgt-zuid-2"
    everyone = {"juf-anouk", "jgz-fleur", "dokter-bos", first, "jgt-zuid-2"}
    for worker in everyone:
        occasions = {a["occasion"] for a in await inbox(services, settings, worker)}
        assert "transferred" in occasions, worker
    regie = await inbox(services, settings, "regie-voorbeeldrade")
    assert "transferred" in {a["occasion"] for a in regie}
    zuid = await get_json(
        f"{services['notification']}/api/regie/matches",
        headers=auth(settings, "regie-voorbeeldrade"),
    )
    assert [(m["team"], m["wijk"]) for m in zuid["matches"]] == [("jgt-zuid", "WK099906")]

    # Daan leaves and Fatima is back: the match gets her, and everyone hears it.
    for args in (("deactivate", "jgt-zuid-2"), ("activate", "jgt-zuid-1")):
        code, out = await roster(settings, *args)
        assert code == 0, out

    async def reassigned() -> list[Any] | None:
        told = await inbox(services, settings, "jgz-fleur")
        return [a for a in told if a["occasion"] == "reassigned"] or None

    (notice,) = await eventually(reassigned, timeout=30)
    assert notice["coordinator"]["worker_id"] == "jgt-zuid-1"
    assert any(a["occasion"] == "reassigned" for a in await inbox(services, settings, "jgt-zuid-1"))

    # The school withdraws: the match goes on without it, and its worker is no
    # longer party to it.
    match_url = f"{services['notification']}/api/matches/{moved['match_id']}"
    await producer(SCHOOL).withdraw_file(files[SCHOOL], WithdrawalReason.UNJUSTIFIED, today=today)

    async def school_gone() -> bool:
        async with httpx.AsyncClient(timeout=10) as client:
            anouk = await client.get(match_url, headers=auth(settings, "juf-anouk", Role.WORKER))
        return anouk.status_code == 404

    await eventually(school_gone, timeout=60)
    async with httpx.AsyncClient(timeout=10) as client:
        fleur = await client.get(match_url, headers=auth(settings, "jgz-fleur", Role.WORKER))
    assert fleur.status_code == 200
    assert {p["worker_id"] for p in fleur.json()["parties"]} == {"jgz-fleur", "dokter-bos"}

    # The GP withdraws too: the match ends, and everyone involved hears of it.
    await producer(GP).withdraw_file(files[GP], WithdrawalReason.RESOLVED, today=today)

    async def ended() -> bool:
        told = await inbox(services, settings, "jgt-zuid-1")
        return any(a["occasion"] == "dissolved" for a in told)

    await eventually(ended, timeout=60)

    # Every roster change is in the audit log, by the operator who made it.
    conn = await asyncpg.connect(settings.database_url)
    try:

        async def roster_changes() -> list[tuple[str, str | None]]:
            rows = await conn.fetch(
                "SELECT actor_id, object_id, purpose FROM audit.entries"
                " WHERE object_type = 'roster-member' AND actor_id = 'beheer-jan'"
            )
            return [(r["object_id"], r["purpose"]) for r in rows]

        changes = await eventually(roster_changes, timeout=30)
        assert ("jgt-zuid-1", "roster: deactivated") in changes
        assert any(obj == "jgt-zuid-9" and "added to jgt-zuid" in str(p) for obj, p in changes)

        # A year after the match ended, the inbox forgets it (policy keep_closed_days).
        await conn.execute(
            "UPDATE notification.matches SET closed_at = closed_at - interval '400 days'"
        )

        async def emptied() -> bool:
            return not await inbox(services, settings, "jgt-zuid-1")

        await eventually(emptied, timeout=30)
        assert await conn.fetchval("SELECT count(*) FROM notification.match_parties") == 0
        assert await conn.fetchval("SELECT count(*) FROM notification.inform_tasks") == 0

        async def purge_logged() -> bool:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FROM audit.entries WHERE object_type = 'inbox-history'"
                )
            )

        await eventually(purge_logged, timeout=30)
    finally:
        await conn.close()

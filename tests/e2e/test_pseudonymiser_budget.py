"""The pseudonymiser is not a BSN dictionary: a partner's credential evaluates at most its
daily budget of blinded elements, however many replicas answer; past it, a refusal that
says why and what to do, counted and audited."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import yaml

from shared.settings import Settings
from tests.conftest import eventually
from tests.e2e.conftest import partner_config, service_env, wait_ready
from vroegsignaal.dev.stack.procs import free_port
from vroegsignaal.partner.bsn import synthetic_bsns
from vroegsignaal.partner.pseudonymise import PseudonymisationError, Pseudonymiser, bsn_input
from vroegsignaal.provision.secrets import Secrets

pytestmark = pytest.mark.e2e

SCHOOL = "school-de-regenboog"
BUDGET = 30


@pytest.fixture
def budgets(tmp_path: Path, secrets: Secrets) -> Path:
    """The pseudonymiser's credentials, with a small daily budget for the school."""
    doc = yaml.safe_load(secrets.pseudonymiser_credentials.read_text())
    doc["partners"][SCHOOL]["daily_budget"] = BUDGET
    path = tmp_path / "pseudonymiser-credentials.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def extra_env(budgets: Path) -> dict[str, dict[str, str]]:
    return {"pseudonymiser": {"VS_PSEUDONYMISER_CREDENTIALS_FILE": str(budgets)}}


@pytest.fixture
def second_replica(
    settings: Settings, secrets: Secrets, budgets: Path, tmp_path: Path, services: dict[str, str]
) -> Iterator[str]:
    """Another pseudonymiser process on the same database, as a second replica."""
    port = free_port()
    env = service_env(settings, tmp_path / "traces.jsonl", secrets, "pseudonymiser")
    env.update(
        {"VS_PSEUDONYMISER_PORT": str(port), "VS_PSEUDONYMISER_CREDENTIALS_FILE": str(budgets)}
    )
    log = tmp_path / "pseudonymiser-2.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vroegsignaal", "serve", "pseudonymiser"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def test_a_partner_gets_its_daily_budget_and_no_more_across_replicas(
    settings: Settings, secrets: Secrets, services: dict[str, str], second_replica: str
) -> None:
    access = partner_config(secrets, settings, SCHOOL).pseudonymiser
    replicas = [services["pseudonymiser"], second_replica]
    bsns = synthetic_bsns(60, random.Random())
    granted = 0
    refusal = ""
    async with httpx.AsyncClient(timeout=10) as http:
        for n in range(6):  # batches of ten, to either replica in turn
            replica = access.model_copy(update={"url": replicas[n % 2]})
            batch = [bsn_input(b) for b in bsns[n * 10 : (n + 1) * 10]]
            try:
                granted += len(await Pseudonymiser(replica, http).pseudonyms(batch))
            except PseudonymisationError as refused:
                refusal = str(refused)
        metrics = [(await http.get(f"{r}/metrics")).text for r in replicas]
    assert granted == BUDGET
    assert "(429)" in refusal and "renews at 00:00 UTC" in refusal
    assert f"{BUDGET} of its {BUDGET} elements" in refusal and "backfill" in refusal
    # Counted per partner on each replica, together the budget.
    counted = [
        float(line.rsplit(" ", 1)[1])
        for text in metrics
        for line in text.splitlines()
        if line.startswith("vroegsignaal_pseudonymiser_partner_elements_total{") and SCHOOL in line
    ]
    assert sum(counted) == BUDGET

    # The first refusal of the day is in the audit log, as the partner's; the others are
    # counted, so that a partner past its budget cannot flood the log.
    async def refusals_logged() -> bool:
        conn = await asyncpg.connect(settings.database_url)
        try:
            denied = await conn.fetchval(
                "SELECT count(*) FROM audit.entries WHERE object_type = 'oprf-evaluation'"
                " AND outcome = 'denied' AND actor_id = $1 AND purpose LIKE '%budget%'",
                SCHOOL,
            )
        finally:
            await conn.close()
        assert denied <= 1
        return bool(denied == 1)

    await eventually(refusals_logged, timeout=30)
    conn = await asyncpg.connect(settings.database_url)
    try:
        refusals = await conn.fetchval(
            "SELECT refused FROM pseudonymiser.daily_use WHERE partner_id = $1", SCHOOL
        )
    finally:
        await conn.close()
    assert refusals == 3

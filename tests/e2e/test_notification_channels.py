"""From partner files to an e-mail in a real SMTP server and a verified webhook at a
partner system, through channels that are down at first; then the escalations when
nobody acknowledges or records contact in time."""

from __future__ import annotations

import asyncio
import json
import random
import re
import secrets as token
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from playwright.async_api import expect

from shared.auth import Role
from shared.contracts import DeadLetter, Topics
from shared.settings import Settings
from shared.webhook import secret_text
from tests.accessibility import assert_accessible
from tests.conftest import auth, eventually, run_cli
from tests.e2e.conftest import Producers
from tests.e2e.test_inbox_browser import chromium, log_in
from tests.e2e.test_pipeline import JGZ, SCHOOL, export, get_json, row
from tests.kafka_tools import read_topic
from tests.mailserver import mail_server
from tests.webhook_receiver import webhook_receiver
from vroegsignaal.dev.stack.procs import free_port
from vroegsignaal.partner.bsn import synthetic_bsns
from vroegsignaal.provision.secrets import Secrets

pytestmark = pytest.mark.e2e

SECRET = token.token_bytes(32)


@pytest.fixture
def ports() -> dict[str, int]:
    """Ports of this test's SMTP relay and partner systems, taken when the test starts
    (not at import, when later free_port() calls could hand them out again)."""
    return {"mail": free_port(), "hook": free_port(), "gone": free_port()}


@pytest.fixture
async def gone_system(ports: dict[str, int]) -> AsyncIterator[None]:
    """A partner system that is gone for good: it answers every delivery 410 Gone."""
    async with webhook_receiver(
        token.token_bytes(32), fail_first=10**9, fail_status=410, port=ports["gone"]
    ):
        yield


@pytest.fixture
def extra_env(
    tmp_path_factory: pytest.TempPathFactory, ports: dict[str, int]
) -> dict[str, dict[str, str]]:
    """Notification with an SMTP relay and a partner system's webhook, both down at first
    (nothing listens on their ports yet), a webhook to a system that is gone for good, and
    escalation checked twice a second. Enough tries that the outage cannot use them up
    however slowly the test brings the relay and the partner system up."""
    hooks = tmp_path_factory.mktemp("hooks") / "webhooks.yaml"
    hooks.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "webhooks": [
                    {
                        "name": "jgz-systeem",
                        "url": f"http://127.0.0.1:{ports['hook']}/vroegsignaal",
                        "secret": secret_text(SECRET),
                        "organisations": ["JGZ Voorbeeldrade"],
                    },
                    {
                        "name": "oud-systeem",
                        "url": f"http://127.0.0.1:{ports['gone']}/gone",
                        "secret": secret_text(token.token_bytes(32)),
                        "organisations": ["Basisschool De Regenboog"],
                    },
                ],
            }
        )
    )
    return {
        "notification": {
            "VS_SMTP_HOST": "127.0.0.1",
            "VS_SMTP_PORT": str(ports["mail"]),
            "VS_WEBHOOKS_FILE": str(hooks),
            "VS_DELIVERY_MAX_ATTEMPTS": "30",
            "VS_ESCALATION_INTERVAL_SECONDS": "0.5",
        }
    }


async def summary(services: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = await get_json(f"{services['notification']}/alerts/summary")
    return result


async def test_e_mail_and_webhook_arrive_after_an_outage_and_late_alerts_escalate(
    settings: Settings,
    services: dict[str, str],
    partners: Producers,
    tmp_path: Path,
    ports: dict[str, int],
    gone_system: None,
) -> None:
    topics = Topics(settings.topic_prefix)
    child, _ = synthetic_bsns(2, random.Random())
    for partner, worker in ((SCHOOL, "juf-anouk"), (JGZ, "jgz-fleur")):
        sent = await partners(partner).send_file(
            export(tmp_path / f"{partner}.csv", [row(child, "", worker, "pesten")]),
            today=datetime.now(UTC).date(),
        )
        assert sent.sent == 1

    # The match is told while both channels are down: nothing is lost, it waits.
    async def waiting() -> bool:
        s = await summary(services)
        return s["open_matches"] == 1 and s["deliveries_pending"] >= 4

    await eventually(waiting, timeout=60)
    fleur = auth(settings, "jgz-fleur", Role.WORKER)
    inbox = await get_json(f"{services['notification']}/api/alerts", headers=fleur)
    (alert,) = inbox["alerts"]
    coordinator = alert["coordinator"]["worker_id"]

    with mail_server(tmp_path, port=ports["mail"]) as mail:
        # The partner system comes up, but fails its first request: retried with backoff.
        async with webhook_receiver(SECRET, fail_first=1, port=ports["hook"]) as hook:

            def delivered() -> bool:
                told = {m["To"] for m in mail.messages()}
                return {
                    "juf-anouk@voorbeeldrade.example",
                    "jgz-fleur@voorbeeldrade.example",
                    f"{coordinator}@voorbeeldrade.example",
                } <= told and len(hook.received) >= 2

            await eventually(async_of(delivered), timeout=60)
            messages = mail.messages()
            hooked = list(hook.received)
    # The partner system refused the first try (503); the same delivery came again.
    assert all(r.verified for r in hooked)
    assert hooked[0].headers["webhook-id"] == hooked[1].headers["webhook-id"]

    # The e-mail says only that there is something in the inbox.
    for message in messages:
        body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
        assert settings.inbox_url in body
        for word in ("juf-anouk", "jgz-fleur", "Medewerker", "pesten", child):
            assert word not in body and word not in str(message["Subject"])
    # One e-mail per person told (the regie role follows a coordinated match in its
    # overview), however often the loop ran.
    ids = [m["X-Vroegsignaal-Delivery"] for m in messages]
    assert len(ids) == len(set(ids)) == 3
    assert "regie-voorbeeldrade@voorbeeldrade.example" not in {m["To"] for m in messages}
    # The partner system got a signed notice for its own worker only, and verified it.
    bodies = [json.loads(r.body) for r in hooked]
    assert {b["recipient_id"] for b in bodies} == {"jgz-fleur"}
    assert bodies[0]["alert_id"] == alert["alert_id"]
    assert "contacts" not in bodies[0]

    # The school's old system is gone (410): its delivery is dead-lettered, not retried.
    async def dead() -> bool:
        return bool((await summary(services))["deliveries_dead"] == 1)

    await eventually(dead, timeout=60)
    letters = [
        DeadLetter.model_validate_json(r.value)
        for r in await read_topic(settings, topics.deadletter, until=lambda rs: len(rs) >= 1)
    ]
    assert [(d.reason_code, d.source_topic) for d in letters] == [
        ("webhook-undeliverable", "delivery:webhook")
    ]

    # Each delivery is in the audit log, about the child (for its access report): the
    # e-mails and the webhook call sent, the gone system's given up; no address in it.
    async def deliveries_logged() -> list[asyncpg.Record] | None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            rows = await conn.fetch(
                "SELECT object_type, outcome, subjects, on_behalf_of,"
                " convert_from(canonical, 'UTF8') AS entry FROM audit.entries"
                " WHERE object_type IN ('alert-email', 'alert-webhook')"
            )
        finally:
            await conn.close()
        return rows if len(rows) == 5 else None

    logged = await eventually(deliveries_logged, timeout=60)
    assert sorted((r["object_type"], r["outcome"]) for r in logged) == [
        *[("alert-email", "success")] * 3,
        ("alert-webhook", "failed"),
        ("alert-webhook", "success"),
    ]
    assert len({s for r in logged for s in r["subjects"]}) == 1
    assert all(r["subjects"] for r in logged)
    assert not any("@" in r["entry"] for r in logged)

    # Nobody acknowledged and nobody recorded contact: let the working days pass.
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            "UPDATE notification.alerts SET issued_at = issued_at - interval '20 days'"
        )
        await conn.execute(
            "UPDATE notification.matches SET raised_at = raised_at - interval '20 days'"
        )
    finally:
        await conn.close()
    lead = auth(settings, "teamlead-noord")
    regie = auth(settings, "regie-voorbeeldrade")
    notification = services["notification"]
    (tmp_path / "later").mkdir()
    with mail_server(tmp_path / "later", port=ports["mail"]) as mail:

        async def overdue() -> tuple[dict[str, Any], dict[str, Any]] | None:
            of_lead = await get_json(f"{notification}/api/overdue", headers=lead)
            of_regie = await get_json(f"{notification}/api/overdue", headers=regie)
            done = len(of_lead["late"]) == 3 and len(of_regie["quiet"]) == 1
            return (of_lead, of_regie) if done else None

        found = await eventually(overdue, timeout=30)
        assert found is not None
        of_lead, of_regie = found

        def overviews_mailed() -> list[str] | None:
            # The e-mail to each that counts what is past its period (another digest to
            # the same person, of something else, may come before or after it).
            bodies = [
                (m["To"], m.get_payload(decode=True).decode())  # type: ignore[union-attr]
                for m in mail.messages()
            ]
            found = [
                next((b for to, b in bodies if to == w and "over de termijn" in b), None)
                for w in (
                    "teamlead-noord@voorbeeldrade.example",
                    "regie-voorbeeldrade@voorbeeldrade.example",
                )
            ]
            return None if None in found else [b for b in found if b is not None]

        mailed = await eventually(async_of(overviews_mailed), timeout=60)
    # The team lead's overview names the workers who did not acknowledge, each once, and
    # how to reach them; the regie role's names whom to chase, the coordinator only. The
    # team has a lead, so its late alerts are not on the regie role's overview.
    assert sorted(i["worker"]["worker_id"] for i in of_lead["late"]) == sorted(
        ["juf-anouk", "jgz-fleur", coordinator]
    )
    assert {i["match_id"] for i in of_lead["late"]} == {alert["match_id"]}
    assert of_lead["quiet"] == [] and of_regie["late"] == []
    # Another team's lead sees none of it.
    elsewhere = auth(settings, "teamlead-zuid")
    assert await get_json(f"{notification}/api/overdue", headers=elsewhere) == {
        "late": [], "quiet": [], "limit": 500,
    }  # fmt: skip
    assert [w["worker_id"] for w in of_regie["quiet"][0]["chase"]] == [coordinator]
    # An overview, not an alert per late alert or quiet match ...
    for who in (lead, regie):
        told = (await get_json(f"{notification}/api/alerts", headers=who))["alerts"]
        assert not [a for a in told if a["occasion"] == "escalation"]
    # ... and one e-mail each that counts what is past its period, naming nobody.
    lead_mail, regie_mail = mailed
    assert "3 punten op uw overzicht zijn over de termijn" in lead_mail
    assert "1 punt op uw overzicht is over de termijn" in regie_mail
    for body in (lead_mail, regie_mail):
        assert coordinator not in body and "juf-anouk" not in body and child not in body

    # Reading the overview is in the log, about the child (for its access report); the
    # log is written through the audit service, so wait for it. (The polls before the
    # escalation showed nothing, and are about no one.)
    async def overview_reads() -> list[asyncpg.Record] | None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            reads = await conn.fetch(
                "SELECT subjects FROM audit.entries WHERE object_type = 'overdue-overview'"
                " AND convert_from(canonical, 'UTF8') LIKE '%teamlead-noord%'"
            )
        finally:
            await conn.close()
        return reads if any(r["subjects"] for r in reads) else None

    reads = await eventually(overview_reads, timeout=60)
    assert {len(r["subjects"]) for r in reads} <= {0, 1}

    # On the team lead's page: the overview, in Dutch, with whom to call; accessible.
    async with chromium() as browser:
        page = await log_in(browser, services, "teamlead-noord", "Ingrid Visser", "team_lead")
        section = page.locator("#overdue-section")
        await expect(section.get_by_role("heading", name="Over de termijn")).to_be_visible()
        late_rows = page.locator("#overdue-late tbody tr")
        await expect(late_rows).to_have_count(3)
        await expect(late_rows.first).to_contain_text("@voorbeeldrade.example")
        await expect(page.locator("#overdue-quiet")).to_be_hidden()  # the regie role's
        await assert_accessible(page, "the team lead's overview of what is past its period")
    # The regie overview shows the match without contact, and nothing more.
    overview = await get_json(f"{services['notification']}/api/regie/matches", headers=regie)
    (m,) = overview["matches"]
    assert m["contact_made"] is False
    assert set(m) == {
        "match_id", "kind", "wijk", "team", "state", "raised_at", "contact_made", "coordinated",
    }  # fmt: skip


def async_of(check: Any) -> Any:
    async def run() -> Any:
        return check()

    return run


async def test_a_worker_with_many_new_cases_gets_one_digest_and_sees_which_youth_each_is(
    settings: Settings,
    secrets: Secrets,
    services: dict[str, str],
    partners: Producers,
    tmp_path: Path,
    ports: dict[str, int],
) -> None:
    """Six matches for the same two workers: each is told of all six in the inbox, but
    by e-mail once (the policy's hour and its five-minute gap for new cases both outlast
    the test); the e-mail counts what it tells of, the rest waits for the next one. Each
    alert names the worker's own registration: the school's own case number, which no
    one else sees, and for the JGZ (which sent none) the number its receipts know."""
    children = synthetic_bsns(6, random.Random())
    with mail_server(tmp_path, port=ports["mail"]) as mail:
        for partner, worker in ((SCHOOL, "juf-anouk"), (JGZ, "jgz-fleur")):
            rows = [
                {
                    **row(child, "", worker, "pesten"),
                    "household_id": f"HH-{n}",
                    "reference": f"LLN-2026-{n:03d}" if partner == SCHOOL else "",
                }
                for n, child in enumerate(children)
            ]
            sent = await partners(partner).send_file(
                export(tmp_path / f"{partner}.csv", rows), today=datetime.now(UTC).date()
            )
            assert sent.sent == 6

        async def queued() -> bool:
            conn = await asyncpg.connect(settings.database_url)
            try:
                return bool(
                    await conn.fetchval(
                        "SELECT count(*) FROM notification.digest_items"
                        " WHERE recipient_id = 'juf-anouk'"
                    )
                    == 6
                )
            finally:
                await conn.close()

        await eventually(queued, timeout=60)

        def to_anouk() -> list[Any]:
            return [m for m in mail.messages() if m["To"] == "juf-anouk@voorbeeldrade.example"]

        await eventually(async_of(lambda: bool(to_anouk())), timeout=30)
        # Several rounds of the composer (every 0.5 s) and the delivery (every 0.2 s).
        await asyncio.sleep(3)
        (message,) = to_anouk()

    anouk = auth(settings, "juf-anouk", Role.WORKER)
    inbox = await get_json(f"{services['notification']}/api/alerts", headers=anouk)
    assert len({a["match_id"] for a in inbox["alerts"]}) == 6
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    told = re.search(r"(\d+) (?:zaak is|zaken zijn) gewijzigd", body)
    assert told is not None, body
    conn = await asyncpg.connect(settings.database_url)
    try:
        emailed, waiting = await conn.fetchrow(
            "SELECT count(DISTINCT match_id) FILTER (WHERE digest_id IS NOT NULL),"
            " count(DISTINCT match_id) FILTER (WHERE digest_id IS NULL)"
            " FROM notification.digest_items WHERE recipient_id = 'juf-anouk'"
        )
    finally:
        await conn.close()
    assert int(told.group(1)) == emailed
    assert emailed + waiting == 6
    # Nothing in it names a child, a worker or a theme.
    for word in ("jgz-fleur", "pesten", *children):
        assert word not in body

    # Which youth: the school's worker sees her own case numbers, one per alert.
    references = {f"LLN-2026-{n:03d}" for n in range(6)}
    yours = [a["your_registrations"] for a in inbox["alerts"]]
    assert all(len(y) == 1 for y in yours)
    assert {y[0]["reference"] for y in yours} == references
    # The JGZ sent no reference: its worker sees the number its producer's receipts hold,
    # and none of the school's case numbers anywhere.
    fleur = auth(settings, "jgz-fleur", Role.WORKER)
    theirs = await get_json(f"{services['notification']}/api/alerts", headers=fleur)
    assert not any(ref in json.dumps(theirs) for ref in references)
    numbers = [a["your_registrations"][0] for a in theirs["alerts"]]
    assert len(numbers) == 6 and all("reference" not in y for y in numbers)
    # ... which `partner lookup` turns back into the row of the JGZ's export.
    code, out, err = await run_cli(
        settings, "partner", "lookup", numbers[0]["number"],
        "--config", str(secrets.partner_config(JGZ)),
    )  # fmt: skip
    assert code == 0, err
    # In Dutch, the time in Amsterdam's: "jgz-bos.csv regel 3, geregistreerd 2 december ..."
    months = (
        "januari|februari|maart|april|mei|juni|juli|augustus|september|oktober|november|december"
    )
    when = rf"\d{{1,2}} ({months}) 20\d\d \d\d:\d\d"
    assert re.search(rf"{JGZ}\.csv regel [2-7], geregistreerd {when},", out), out
    # Nor does anyone else see them: the coordinator's view of the match has none.
    coordinator = theirs["alerts"][0]["coordinator"]["worker_id"]
    lead = auth(settings, coordinator, Role.WORKER)
    seen = await get_json(f"{services['notification']}/api/alerts", headers=lead)
    assert seen["alerts"] and not any(ref in json.dumps(seen) for ref in references)
    assert all(a["your_registrations"] == [] for a in seen["alerts"])

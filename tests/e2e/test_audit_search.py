"""The privacy officer searches the audit log by subject pseudonym, user, organisation,
action and period, through the API and the web page; only the privacy officer may, and
every search is itself in the log."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from playwright.async_api import expect

from services.audit.verify import verify_export
from shared.auth import Role
from shared.contracts import (
    AuditAction,
    AuditActor,
    AuditEvent,
    AuditOutcome,
    DeadLetter,
    Topics,
)
from shared.settings import REPO_ROOT, Settings
from tests.accessibility import assert_accessible
from tests.conftest import auth, eventually
from tests.e2e.conftest import Producers
from tests.e2e.test_inbox_browser import chromium
from tests.e2e.test_pipeline import JGZ, SCHOOL, export, get_json, row
from tests.kafka_tools import login, read_topic
from vroegsignaal.partner.bsn import synthetic_bsns

pytestmark = pytest.mark.e2e

FG = "fg-voorbeeldrade"
SCREENSHOT = REPO_ROOT / "test-artifacts" / "audit.png"
AUDIT_NL = json.loads((REPO_ROOT / "services/audit/web/i18n/nl.json").read_text())


async def search(
    services: dict[str, str], settings: Settings, as_user: str = FG, **criteria: str
) -> httpx.Response:
    """A search as `as_user`: a demo user, or a partner worker of this test's files."""
    worker = as_user == "juf-anouk"
    headers = auth(settings, as_user, Role.WORKER) if worker else auth(settings, as_user)
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(
            f"{services['audit']}/audit/v1/search?{urlencode(criteria)}", headers=headers
        )


async def entries(services: dict[str, str], settings: Settings, **criteria: str) -> list[Any]:
    response = await search(services, settings, **criteria)
    assert response.status_code == 200, response.text
    found: list[Any] = [e["event"] for e in response.json()["entries"]]
    return found


async def test_the_privacy_officer_searches_the_log_and_every_search_is_logged(
    settings: Settings, services: dict[str, str], partners: Producers, tmp_path: Path
) -> None:
    child, _ = synthetic_bsns(2, random.Random())
    for partner, worker in ((SCHOOL, "juf-anouk"), (JGZ, "jgz-fleur")):
        await partners(partner).send_file(
            export(tmp_path / f"{partner}.csv", [row(child, "", worker, "pesten")]),
            today=datetime.now(UTC).date(),
        )
    # A team lead of JGT Noord reads their inbox: an access by an organisation.
    await get_json(
        f"{services['notification']}/api/alerts", headers=auth(settings, "teamlead-noord")
    )

    async def matched() -> str | None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return await conn.fetchval(  # type: ignore[no-any-return]
                "SELECT subjects[1] FROM audit.entries WHERE object_type = 'match'"
                " AND source_system = 'matching' LIMIT 1"
            )
        finally:
            await conn.close()

    subject = await eventually(matched, timeout=60)

    async def told() -> list[Any]:
        found = await entries(services, settings, subject=subject, action="notify")
        # The two registering workers and the coordinator.
        return found if len(found) >= 3 else []

    # By subject pseudonym: what happened to this child, and only to this child.
    notified = await eventually(told, timeout=60)
    assert {e["on_behalf_of"] for e in notified} >= {"juf-anouk", "jgz-fleur"}
    about = await entries(services, settings, subject=subject)
    assert all(subject in e["subjects"] for e in about)
    assert {e["source_system"] for e in about} >= {"intake", "matching", "notification"}
    # By user: what was done by or for a worker.
    for_anouk = await entries(services, settings, user="juf-anouk")
    assert for_anouk and all("juf-anouk" in (e["actor"]["actor_id"], e["on_behalf_of"])
                             for e in for_anouk)  # fmt: skip
    # By organisation: the team lead's read of the inbox.
    by_org = await eventually(
        lambda: entries(services, settings, organisation="JGT Noord"), timeout=30
    )
    assert {(e["actor"]["actor_id"], e["action"]) for e in by_org} == {("teamlead-noord", "read")}
    # By period: nothing before the test, nothing in the future.
    assert await entries(services, settings, to="2001-01-01T00:00:00+00:00") == []
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert await entries(services, settings, **{"from": tomorrow}) == []
    # Paging: in log order, page after page, nothing twice.
    first = (await search(services, settings, subject=subject, limit="2")).json()
    assert len(first["entries"]) == 2 and first["next_after"] is not None
    rest = (
        await search(services, settings, subject=subject, after=str(first["next_after"]))
    ).json()["entries"]
    indexes = [e["leaf_index"] for e in first["entries"] + rest]
    assert indexes == sorted(set(indexes))

    # Only the privacy officer; a clear refusal of a malformed search.
    for user in ("jgt-noord-1", "regie-voorbeeldrade", "partner-admin"):
        assert (await search(services, settings, user, subject=subject)).status_code == 403
    async with httpx.AsyncClient(timeout=10) as client:
        anonymous = await client.get(f"{services['audit']}/audit/v1/search?action=read")
    assert anonymous.status_code == 401
    worker = await search(services, settings, "juf-anouk", subject=subject)
    assert worker.status_code == 403
    assert (await search(services, settings)).json()["error"].startswith("name at least one")
    for bad in ({"subject": "123456782"}, {"action": "look"}, {"from": "yesterday"},
                {"from": "2026-01-01T00:00:00"}, {"colour": "red"}, {"user": "123456782"},
                {"user": "Jan de Vries"}, {"organisation": "bsn 123456782"}):  # fmt: skip
        response = await search(services, settings, **bad)
        assert response.status_code == 400, bad

    # The web page: log in as the privacy officer, search by subject, see the entries.
    async with chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await page.goto(f"{services['audit']}/audit/ui/")
        await page.click("#login-button")
        await page.click(f'button[data-user="{FG}"]')
        await expect(page.locator("#who")).to_contain_text("privacy_officer")
        await page.fill("input[name=subject]", subject)
        await page.click("#search button[type=submit]")
        await expect(page.locator("#results tbody tr").first).to_be_visible()
        shown = await page.locator("#results tbody tr").count()
        assert shown >= len(about)

        # The log's integrity on the same page: the latest signed head; a full
        # verification started here, its result shown when it ends.
        integrity = page.locator("#integrity")
        await expect(integrity).to_contain_text(AUDIT_NL["integrity.head"])
        await expect(integrity).to_have_attribute("data-state", "never")
        await page.get_by_role("button", name=AUDIT_NL["integrity.start"]).click()
        await expect(integrity).to_have_attribute("data-state", "intact", timeout=60_000)
        await expect(integrity).to_contain_text("intact · gestart")
        await expect(page.locator("#problems li")).to_have_count(0)

        # A period exported for a supervisor: every entry with its proof, which verifies
        # with nothing but the public key.
        today = datetime.now(UTC).date()
        await page.fill("#export input[name=from]", (today - timedelta(days=1)).isoformat())
        await page.fill("#export input[name=to]", (today + timedelta(days=1)).isoformat())
        await page.get_by_role("button", name=AUDIT_NL["export.button"]).click()
        download = page.locator("#export-download")
        await expect(download).to_contain_text("regels met hun bewijs downloaden")
        exported = await download.evaluate("a => fetch(a.href).then(r => r.text())")
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.unlink(missing_ok=True)
        await page.screenshot(path=SCREENSHOT, full_page=True)
        assert SCREENSHOT.read_bytes().startswith(b"\x89PNG")
        await assert_accessible(page, "the privacy officer's page with results")
    public = await get_json(f"{services['audit']}/audit/v1/public-key")
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public["public_key"]))
    verified, problems = verify_export(exported.splitlines(), key)
    assert problems == [] and verified >= len(about)
    assert any(subject in line for line in exported.splitlines())

    # Each of those is in the log itself: the verification, its result, the export.
    async def workplace_logged() -> list[Any]:
        found = await entries(services, settings, user=FG, action="export")
        checks = await entries(services, settings, action="read", user=FG)
        started = [e for e in checks if e["object_type"] == "audit-log-verification"]
        return found + started if found and started else []

    await eventually(workplace_logged, timeout=30)
    # Only the privacy officer: a worker is refused each of them.
    async with httpx.AsyncClient(timeout=10) as http:
        for method, path in (
            ("GET", "/audit/v1/integrity"),
            ("POST", "/audit/v1/verifications"),
            ("GET", "/audit/v1/reports"),
            ("GET", f"/audit/v1/export?from={today}T00:00%2B00:00&to={today}T23:00%2B00:00"),
        ):
            refused = await http.request(
                method, f"{services['audit']}{path}", headers=auth(settings, "jgt-noord-1")
            )
            assert refused.status_code == 403, (path, refused.text)

    # Every search is itself in the log: who searched, for what, about which subject.
    async def searches() -> list[Any]:
        found = await entries(services, settings, action="search", user=FG)
        return found if any(subject in e["subjects"] for e in found) else []

    logged = await eventually(searches, timeout=30)
    assert all(e["object_type"] == "audit-log" and e["actor"]["role"] == "privacy_officer"
               for e in logged)  # fmt: skip

    # The refused searches are logged as refusals (through the outbox and the topic).
    async def refusals() -> list[Any]:
        refused = await entries(services, settings, user="jgt-noord-1", action="read")
        return [e for e in refused if e["outcome"] == "denied" and e["source_system"] == "audit"]

    await eventually(refusals, timeout=30)
    # The raw query never enters the log: a BSN typed into a search is not recorded.
    conn = await asyncpg.connect(settings.database_url)
    try:
        assert not await conn.fetchval(
            "SELECT count(*) FROM audit.entries WHERE position('123456782' in"
            " convert_from(canonical, 'UTF8')) > 0"
        )
    finally:
        await conn.close()


async def test_an_entry_on_another_services_audit_topic_is_not_logged_as_true(
    settings: Settings, services: dict[str, str]
) -> None:
    """Each service may write only its own audit topic (its Kafka ACL), and the audit
    service holds every entry to the topic it came on: one claiming another source (here
    written by the broker's operator, who may write anything) goes to the dead letters,
    not into the log."""
    topics = Topics(settings.topic_prefix)
    forged, true = (
        AuditEvent(
            action=AuditAction.DELETE,
            outcome=AuditOutcome.SUCCESS,
            actor=AuditActor(actor_id=source, role="service"),
            object_type="registration",
            source_system=source,
            source_instance="x",
            purpose=f"{source}: an entry on matching's audit topic",
        )
        for source in ("intake", "matching")
    )
    producer = AIOKafkaProducer(**login(settings))
    await producer.start()
    try:
        for event in (forged, true):
            await producer.send_and_wait(
                topics.audit_of("matching"), event.to_bytes(), key=b"registration"
            )
    finally:
        await producer.stop()
    (letter,) = [
        DeadLetter.model_validate_json(r.value)
        for r in await read_topic(settings, topics.deadletter, until=lambda rs: len(rs) >= 1)
    ]
    assert (letter.reason_code, letter.source_topic) == (
        "audit-source-mismatch",
        topics.audit_of("matching"),
    )
    conn = await asyncpg.connect(settings.database_url)
    try:

        async def logged() -> list[str]:
            rows = await conn.fetch(
                "SELECT event_id::text AS id FROM audit.entries WHERE source_instance = 'x'"
            )
            return [r["id"] for r in rows]

        assert await eventually(logged) == [str(true.event_id)]
    finally:
        await conn.close()

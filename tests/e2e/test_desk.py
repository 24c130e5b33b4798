"""The registration desk in a real browser (Debian's Chromium), through its real
entrypoint (`vroegsignaal partner desk`) against the real services, Kafka and PostgreSQL:
a school's worker registers a youth in the form; the BSN is blinded in the page, so no
request the page sends holds it; the registration is matched with the youth health
care's of the same youth and reaches that organisation's inbox; the worker sees it is
part of a case and withdraws it. A worker of another organisation is refused; a BSN
posted to any of the desk's endpoints is refused, and is in neither its log nor its
database."""

from __future__ import annotations

import json
import os
import random
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, Request, expect

from shared.auth import Role
from shared.contracts import Category
from shared.settings import REPO_ROOT, Settings
from tests.accessibility import assert_accessible
from tests.conftest import auth, eventually
from tests.e2e.conftest import Desk, Producers
from tests.e2e.test_inbox_browser import alerts_of, chromium, registration, send_with_cli
from tests.e2e.test_pipeline import JGZ, SCHOOL, get_json
from vroegsignaal.dev.desk import SCHEMA
from vroegsignaal.partner.bsn import synthetic_bsns
from vroegsignaal.partner.pseudonymise import bsn_input, household_input
from vroegsignaal.provision.secrets import Secrets

pytestmark = pytest.mark.e2e

NL = json.loads((REPO_ROOT / "vroegsignaal/partner/desk/web/i18n/nl.json").read_text())
SCHOOL_WORKER, SCHOOL_NAME = "school-de-regenboog-1", "Lotte de Jong"
JGZ_WORKER, JGZ_NAME = "jgz-voorbeeldrade-1", "Noor Hendriks"


def nl(key: str, **params: object) -> str:
    return str(NL[key]).format(**params)


async def log_in(browser: Browser, services: dict[str, str], desk: Desk, user: str) -> Page:
    """Log in at the desk's page through the issuer's login page."""
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{desk.url}/registratie/")
    await page.click("#login-button")
    await page.wait_for_url(lambda url: url.startswith(f"{services['issuer']}/authorize?"))
    await page.click(f'button[data-user="{user}"]')
    await page.wait_for_url(f"{desk.url}/registratie/")
    return page


def born_years_ago(years: int) -> date:
    today = datetime.now(UTC).date()
    return date(today.year - years, today.month, min(today.day, 28))


async def test_a_registration_from_the_browser_is_matched_seen_and_withdrawn_without_a_bsn_leaving_the_page(  # noqa: E501
    settings: Settings,
    secrets: Secrets,
    services: dict[str, str],
    desk: Desk,
    partners: Producers,
    tmp_path: Path,
) -> None:
    child, parent, other_parent = synthetic_bsns(3, random.Random())
    household = "GEZIN-4471"
    born = born_years_ago(9)
    # The youth health care registered the same youth from its own export.
    await send_with_cli(
        settings,
        secrets,
        tmp_path,
        JGZ,
        [registration(child, JGZ_WORKER, JGZ_NAME, Category.OPVOEDVRAGEN)],
    )
    sent: list[tuple[str, str, bytes]] = []

    def capture(request: Request) -> None:
        sent.append((request.method, request.url, request.post_data_buffer or b""))

    async with chromium() as browser, httpx.AsyncClient(timeout=10) as http:
        page = await log_in(browser, services, desk, SCHOOL_WORKER)
        page.on("request", capture)
        # Nothing the page does is blocked by its content security policy or fails.
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        await expect(page.locator("#who")).to_have_text(f"{SCHOOL_NAME} (Basisschool De Regenboog)")
        await expect(page.locator("#mine tbody td")).to_have_text(nl("mine.none"))
        assert await page.get_attribute("html", "lang") == "nl"
        # The worker's contact as their login gives it (config/demo-users.yaml).
        await expect(page.locator("#contact")).to_have_text(
            f"{SCHOOL_NAME} · {SCHOOL_WORKER}@voorbeeldrade.example · +31 6 2000 0001"
        )
        await assert_accessible(page, "the registration form")

        # The elfproef as the worker types.
        bsn = page.locator("#child-bsn")
        await bsn.press_sequentially(child[:5])
        await expect(page.locator("#child-bsn-state")).to_have_text(nl("bsn.incomplete"))
        wrong = child[:8] + str((int(child[8]) + 1) % 10)
        await bsn.fill("")
        await bsn.press_sequentially(wrong)
        await expect(page.locator("#child-bsn-state")).to_have_text(nl("bsn.invalid"))
        await expect(bsn).to_have_attribute("aria-invalid", "true")
        await bsn.fill("")
        await bsn.press_sequentially(child)
        await expect(page.locator("#child-bsn-state")).to_have_text(nl("bsn.valid"))

        limit = f"{born.year + 23:04d}-{born.month:02d}"
        await page.fill("#born", born.isoformat())
        await expect(page.locator("#age-state")).to_have_text(nl("age.month", month=limit))
        await page.locator("#parent-1-bsn").press_sequentially(parent)
        await page.locator("#parent-2-bsn").press_sequentially(other_parent)
        await page.fill("#household", household)
        await page.select_option("#category", Category.SCHOOLVERZUIM.value)
        # The school may find the wijk from a postcode (config/desk.yaml), in the page.
        await page.locator("#postcode").press_sequentially("9901 AB")
        await expect(page.locator("#wijk")).to_have_value("WK099901")
        await page.fill("#reference", "LLN-2026-017")
        await page.click("#submit")
        await expect(page.locator("#result")).to_have_text(
            nl("sent.reference", reference="LLN-2026-017"), timeout=30_000
        )
        await expect(page.locator("#child-bsn")).to_have_value("")
        row = page.locator("#mine tbody tr[data-registration]")
        await expect(row).to_have_count(1)
        await expect(row.locator("td").first).to_have_text("LLN-2026-017")
        # Not yet part of a case, or already: the match may be raised before the list loads.
        either = f"^({re.escape(nl('case.none'))}|{re.escape(nl('case.open'))})$"
        await expect(row.locator(".state-cell")).to_have_text(re.compile(either))

        # Matched with the youth health care's registration: the producer's pseudonym
        # and the page's are one. That organisation's worker is told.
        async def told() -> list[dict[str, Any]]:
            return await alerts_of(http, settings, services["notification"], JGZ_WORKER)

        (alert,) = await eventually(told, timeout=60)
        match_id = alert["match_id"]

        async def ours() -> list[dict[str, Any]]:  # told in any order
            return await alerts_of(http, settings, services["notification"], SCHOOL_WORKER)

        assert [a["match_id"] for a in await eventually(ours, timeout=30)] == [match_id]

        # The worker sees it is part of a case (the inbox, asked with their own token).
        async def in_a_case() -> bool:  # the list is read when the page loads: load again
            await page.reload()
            await expect(row).to_have_count(1)
            return await row.locator(".state-cell").inner_text() == nl("case.open")

        await eventually(in_a_case, timeout=30, interval=1)
        await assert_accessible(page, "the list of own registrations")

        # Withdrawn as unjustified: the match dissolves.
        page.once("dialog", lambda dialog: dialog.accept())
        await row.locator("select").select_option("unjustified")
        await row.get_by_role("button").click()
        withdrawn = nl("withdrawn.unjustified", date="")
        await expect(row.locator(".state-cell")).to_contain_text(withdrawn.split(" op ")[0])
        await expect(row.get_by_role("button")).to_have_count(0)

        async def dissolved() -> bool:
            s = await get_json(f"{services['matching']}/matches/summary")
            return (s["open_matches"], s["registrations"]) == (0, 1)

        await eventually(dissolved, timeout=60)
        assert problems == []

    # What the page sent: blinded elements and pseudonyms, never a BSN or the day of birth.
    posted = [body for method, _url, body in sent if method == "POST"]
    assert len(posted) == 3, sent  # evaluate, register, withdraw
    evaluate, registered, _withdrawal = (json.loads(b) for b in posted)
    assert len(evaluate["blinded"]) == 4
    assert registered["age_limit_month"] == limit
    # Each pseudonym where the producer puts it, the one the producer makes of it.
    made = await partners(SCHOOL).pseudonymiser.pseudonyms(
        [bsn_input(child), bsn_input(parent), bsn_input(other_parent), household_input(household)]
    )
    assert [registered["child"], *registered["parents"], registered["household"]] == made
    secrets_ = (child, parent, other_parent, household, born.isoformat())
    for _method, url, body in sent:
        for secret in {*secrets_, *(s.lstrip("0") for s in secrets_)}:
            assert secret not in url
            assert secret.encode() not in body, f"{secret!r} sent to {url}"


async def test_a_worker_of_an_organisation_without_the_desk_is_refused(
    settings: Settings, services: dict[str, str], desk: Desk
) -> None:
    async with chromium() as browser:
        page = await log_in(browser, services, desk, "jgt-noord-1")
        await expect(page.locator("#error")).to_have_text(nl("error.not-this-desk"))
        await expect(page.locator("#register-section")).to_be_hidden()
        await expect(page.locator("#mine-section")).to_be_hidden()
    async with httpx.AsyncClient(timeout=10) as http:
        for user in ("jgt-noord-1", "partner-admin"):
            for path in ("setup", "registrations"):
                answer = await http.get(
                    f"{desk.url}/registratie/api/{path}", headers=auth(settings, user)
                )
                assert answer.status_code == 403, (user, path, answer.text)
        # A worker of the right organisation: let through.
        answer = await http.get(
            f"{desk.url}/registratie/api/setup", headers=auth(settings, SCHOOL_WORKER)
        )
        assert answer.status_code == 200
        assert answer.json()["organisation"] == "Basisschool De Regenboog"
        answer = await http.get(f"{desk.url}/registratie/api/setup")
        assert answer.status_code == 401


def registration_body(key_version: str) -> dict[str, Any]:
    """A registration the desk takes (as the page would send it)."""
    return {
        "submission": str(uuid.uuid4()),
        "key_version": key_version,
        "child": os.urandom(32).hex(),
        "parents": [],
        "household": None,
        "age_limit_month": f"{datetime.now(UTC).year + 10}-05",
        "category": "pesten",
        "wijk": "WK099901",
        "reference": None,
    }


def bsn_bodies(bsn: str, good: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(method, path, body) of every way a BSN could be sent to the desk's endpoints;
    first `good` itself, which is taken: each refusal after it is the BSN's."""
    base = "/registratie/api"
    key_version = good["key_version"]
    yield "POST", f"{base}/registrations", good
    yield "POST", f"{base}/evaluate", {"key_version": key_version, "blinded": [bsn]}
    yield "POST", f"{base}/evaluate", {"key_version": key_version, "blinded": [], "bsn": bsn}
    yield "POST", f"{base}/evaluate", {"key_version": bsn, "blinded": ["A" * 43 + "="]}
    yield "POST", f"{base}/evaluate", [bsn]
    for field in ("child", "household", "reference", "phone", "wijk", "category", "submission"):
        yield "POST", f"{base}/registrations", {**good, field: bsn}
    yield "POST", f"{base}/registrations", {**good, "parents": [bsn]}
    yield "POST", f"{base}/registrations", {**good, "reference": f"dossier {bsn[:4]} {bsn[4:]}"}
    yield "POST", f"{base}/registrations", {**good, "phone": f"+31 {bsn}"}
    yield "POST", f"{base}/registrations", {**good, "bsn": bsn}
    yield "POST", f"{base}/registrations", {**good, bsn: "x"}
    yield "POST", f"{base}/registrations", bsn
    yield "POST", f"{base}/registrations/{bsn}/withdraw", {"reason": "resolved"}
    yield "POST", f"{base}/registrations/{good['submission']}/withdraw", {"reason": bsn}
    for path in ("/config", "/setup", "/registrations"):
        yield "POST", f"{base}{path}", {"bsn": bsn}
        yield "GET", f"{base}{path}?bsn={bsn}", None
    yield "POST", "/registratie/", {"bsn": bsn}
    yield "POST", "/metrics", {"bsn": bsn}


async def test_a_bsn_posted_to_any_endpoint_is_refused_and_neither_logged_nor_stored(
    settings: Settings, desk: Desk
) -> None:
    (bsn,) = synthetic_bsns(1, random.Random())
    headers = auth(settings, SCHOOL_WORKER)
    async with httpx.AsyncClient(base_url=desk.url, timeout=10) as http:
        setup = (await http.get("/registratie/api/setup", headers=headers)).json()
        refused = 0
        good = registration_body(setup["key_version"])
        for method, path, body in bsn_bodies(bsn, good):
            content = None if body is None else json.dumps(body)
            answer = await http.request(method, path, content=content, headers=headers)
            if method == "GET":
                # A query is not read: the answer is the page's, without the value.
                assert bsn not in answer.text, (method, path)
                continue
            if body is good:
                assert answer.status_code == 201, answer.text  # the one without a BSN
                continue
            assert 400 <= answer.status_code < 500, (path, body, answer.status_code, answer.text)
            assert bsn not in answer.text and bsn.lstrip("0") not in answer.text, (path, body)
            refused += 1
        assert refused >= 20
        metrics = (await http.get("/metrics")).text
        assert 'vroegsignaal_desk_refusals_total{reason="invalid"}' in metrics

        # The same form again is the same registration; changed, it is refused.
        again = await http.post("/registratie/api/registrations", json=good, headers=headers)
        assert again.status_code == 201, again.text
        [mine] = (await http.get("/registratie/api/registrations", headers=headers)).json()[
            "registrations"
        ]
        assert again.json()["registration"] == mine["registration"] and mine["sent"]
        changed = {**good, "category": "armoede"}
        answer = await http.post("/registratie/api/registrations", json=changed, headers=headers)
        assert (answer.status_code, answer.json()["code"]) == (409, "changed")
        # A colleague at the same school neither sees it nor withdraws it.
        colleague = auth(settings, "juf-anouk", Role.WORKER)
        theirs = await http.get("/registratie/api/registrations", headers=colleague)
        assert theirs.status_code == 200 and theirs.json()["registrations"] == []
        path = f"/registratie/api/registrations/{mine['registration']}/withdraw"
        answer = await http.post(path, json={"reason": "unjustified"}, headers=colleague)
        assert (answer.status_code, answer.json()["code"]) == (404, "unknown")
        answer = await http.post(path, json={"reason": "resolved"}, headers=headers)
        assert answer.status_code == 200, answer.text
        answer = await http.post(path, json={"reason": "unjustified"}, headers=headers)
        assert (answer.status_code, answer.json()["code"]) == (409, "withdrawn")
    # Nothing of it in the desk's database (every table, every column, as text) ...
    conn = await asyncpg.connect(desk.database_url)
    try:
        tables = [
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                SCHEMA,
            )
        ]
        assert "registrations" in tables
        for table in tables:
            rows = await conn.fetch(f'SELECT t::text AS row FROM "{SCHEMA}"."{table}" t')
            # As text, and in a bytea's hex: neither holds it.
            for form in (bsn.lstrip("0"), bsn.encode().hex(), bsn.lstrip("0").encode().hex()):
                assert not [r for r in rows if form in r["row"]], table
    finally:
        await conn.close()
    # ... nor in its log.
    assert bsn.lstrip("0") not in desk.log.read_text()

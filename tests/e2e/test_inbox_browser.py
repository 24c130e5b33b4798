"""The inbox in a real browser (headless Chromium, Debian's package): a worker logs in at
the demo issuer, watches a case arrive without reloading, reads in its timeline whom to
contact but never why, acknowledges it; a colleague who is not party neither sees nor
opens it. A coordinator with 200 cases pages through them and filters them."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.async_api import Browser, Page, async_playwright, expect

from shared.contracts import Category
from shared.settings import REPO_ROOT, Settings
from tests.accessibility import assert_accessible
from tests.conftest import auth, run_cli
from tests.e2e.conftest import Producers
from tests.e2e.test_pipeline import JGZ, SCHOOL, export, get_json, row
from vroegsignaal.partner.bsn import synthetic_bsns
from vroegsignaal.provision.secrets import Secrets

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and nothing that reaches out on its own: the closed network refuses it.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = REPO_ROOT / "test-artifacts" / "inbox.png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Demo users (config/demo-users.yaml): the worker whose inbox is under test, the other
# party of the match, and two workers party to nothing.
WORKER, WORKER_NAME = "jgz-voorbeeldrade-1", "Noor Hendriks"
OTHER, OTHER_NAME = "school-de-regenboog-1", "Lotte de Jong"
COLLEAGUE = "huisartsen-centrum-1"
OUTSIDER, OUTSIDER_NAME = "jgt-zuid-1", "Fatima el Amrani"
# A wijk of team jgt-noord (config/roster.yaml), whose coordinator is told too.
WIJK = "WK099901"
# The page is Dutch unless asked otherwise: what it shows is its Dutch catalogue's text.
NL = json.loads((REPO_ROOT / "services/notification/web/i18n/nl.json").read_text())
EN = json.loads((REPO_ROOT / "services/notification/web/i18n/en.json").read_text())
PERSON_RAISED = NL["alert.person.raised"]


def nl(key: str, **params: object) -> str:
    return str(NL[key]).format(**params)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium under Playwright; each launch gets a fresh temporary profile."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run 'make browser' (installs Debian's chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


async def log_in(
    browser: Browser, services: dict[str, str], user_id: str, name: str, role: str = "worker"
) -> Page:
    """Log in to the inbox as `user_id` through the issuer's page; returns once the
    alert list is loaded and its live stream is open."""
    page = await (await browser.new_context()).new_page()
    inbox = f"{services['notification']}/inbox/"
    await page.goto(inbox)
    await page.click("#login-button")
    await page.wait_for_url(lambda url: url.startswith(f"{services['issuer']}/authorize?"))
    async with page.expect_response(lambda r: r.url.endswith("/api/alerts/stream")) as stream:
        await page.click(f'button[data-user="{user_id}"]')
    assert (await stream.value).ok
    await expect(page.locator("#who")).to_have_text(f"{name} ({role})")
    await expect(page).to_have_url(inbox)  # the code and state are gone from the address
    await expect(page.locator("#login")).to_be_hidden()
    return page


async def send_with_cli(
    settings: Settings, secrets: Secrets, tmp_path: Path, partner: str, rows: list[dict[str, str]]
) -> None:
    """A partner's export through its real entrypoint, `vroegsignaal partner send`."""
    path = export(tmp_path / f"{partner}.csv", rows)
    config = yaml.safe_load(secrets.partner_config(partner).read_text())
    config["pseudonymiser"]["url"] = settings.pseudonymiser_url
    config_path = tmp_path / f"{partner}.yaml"
    config_path.write_text(yaml.safe_dump(config))
    status, out, err = await run_cli(
        settings, "partner", "send", str(path), "--config", str(config_path)
    )
    assert status == 0, err
    assert "verstuurd 1, afgewezen 0" in out, out


def registration(child: str, worker_id: str, worker_name: str, category: str) -> dict[str, str]:
    registered = datetime.now(UTC) - timedelta(hours=1)
    return {
        **row(child, "", worker_id, category),
        "household_id": "",
        "wijk": WIJK,
        "registered_at": registered.isoformat(timespec="seconds"),
        "worker_name": worker_name,
    }


async def assert_no_theme(page: Page) -> None:
    """The page says whom to contact, never why: no theme of concern, in any form."""
    html = (await page.content()).lower()
    for category in Category:
        for text in {category.value, category.value.replace("_", " ")}:
            assert text not in html, f"the inbox shows the theme {text!r}"


async def alerts_of(
    http: httpx.AsyncClient, settings: Settings, url: str, user_id: str
) -> list[dict[str, Any]]:
    response = await http.get(f"{url}/api/alerts", headers=auth(settings, user_id))
    assert response.status_code == 200, response.text
    alerts: list[dict[str, Any]] = response.json()["alerts"]
    return alerts


async def test_a_worker_sees_a_match_arrive_live_acknowledges_it_and_no_one_else_sees_it(
    settings: Settings, secrets: Secrets, services: dict[str, str], tmp_path: Path
) -> None:
    notification = services["notification"]
    (child,) = synthetic_bsns(1, random.Random())
    async with chromium() as browser, httpx.AsyncClient(timeout=10) as http:
        page = await log_in(browser, services, WORKER, WORKER_NAME)
        await expect(page.locator("#cases li")).to_have_text([nl("cases.none")])
        assert await page.get_attribute("html", "lang") == "nl"

        # Anything that reloads or leaves the page drops this marker.
        await page.evaluate("window.__inboxMarker = 'still the same page'")
        navigations: list[str] = []
        page.on(
            "framenavigated",
            lambda frame: navigations.append(frame.url) if frame == page.main_frame else None,
        )

        # Two organisations register the same child: a person match, raised while the
        # page is open.
        await send_with_cli(
            settings,
            secrets,
            tmp_path,
            JGZ,
            [registration(child, WORKER, WORKER_NAME, Category.OPVOEDVRAGEN)],
        )
        await send_with_cli(
            settings,
            secrets,
            tmp_path,
            SCHOOL,
            [registration(child, OTHER, OTHER_NAME, Category.SCHOOLVERZUIM)],
        )

        item = page.locator("#cases li[data-match-id]")
        await expect(item).to_have_count(1, timeout=60_000)
        assert await page.evaluate("window.__inboxMarker") == "still the same page"
        assert navigations == []
        match_id = await item.get_attribute("data-match-id")
        assert match_id

        # One case: what changed last, what is unread, no contact yet, the task to inform.
        await expect(item).to_have_class("new")
        await expect(item.locator(".message")).to_have_text(PERSON_RAISED)
        facts = f"{nl('facts.new', n=1)} · {nl('facts.no-contact')} · {nl('facts.tasks.one', n=1)}"
        await expect(item.locator(".facts")).to_have_text(facts, timeout=30_000)
        await expect(page.locator("#waiting")).to_have_text(nl("waiting", n=1))
        await assert_no_theme(page)

        [stored] = await alerts_of(http, settings, notification, WORKER)
        assert stored["match_id"] == match_id
        assert stored["acknowledged_at"] is None

        # Its timeline says whom to contact and who coordinates; everyone involved below.
        await item.get_by_role("button", name=nl("case.open")).click()
        case = page.locator("#case")
        await expect(page.locator("#case-section")).to_be_visible()
        step = case.locator(".timeline > li")
        await expect(step).to_have_count(1)
        await expect(step.locator(".message")).to_have_text(PERSON_RAISED)
        await expect(step.locator(".contacts li")).to_have_text(
            f"{OTHER_NAME} · {OTHER}@voorbeeldrade.example"
        )
        await expect(step).to_contain_text(nl("coordinator", who="Sanne de Vries"))
        match_box = page.locator("#match")
        await expect(page.locator("#match-section")).to_be_visible()
        await expect(match_box).to_contain_text(WORKER_NAME)
        await expect(match_box).to_contain_text(OTHER_NAME)
        await assert_no_theme(page)
        await assert_accessible(page, "the inbox with a case open")

        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.unlink(missing_ok=True)
        await page.screenshot(path=SCREENSHOT, full_page=True)
        shot = SCREENSHOT.read_bytes()
        assert shot.startswith(PNG_MAGIC) and len(shot) > 1000

        # Acknowledged on the case: everything unread in it at once.
        await item.locator("button.acknowledge").click()
        await expect(item).to_have_class("done")
        await expect(item.locator("button.acknowledge")).to_have_count(0)
        await expect(item.locator(".facts")).to_have_text(
            f"{nl('facts.no-contact')} · {nl('facts.tasks.one', n=1)}"
        )
        await expect(page.locator("#waiting")).to_have_text(nl("waiting", n=1))  # the task
        [stored] = await alerts_of(http, settings, notification, WORKER)
        assert stored["acknowledged_at"] is not None
        await expect(page.locator("#error")).to_be_hidden()

        # Only parties open the match, and only the recipient acknowledges an alert.
        opened = await http.get(
            f"{notification}/api/matches/{match_id}", headers=auth(settings, WORKER)
        )
        assert opened.status_code == 200
        for outsider in (COLLEAGUE, OUTSIDER):
            refused = await http.get(
                f"{notification}/api/matches/{match_id}", headers=auth(settings, outsider)
            )
            assert refused.status_code == 404, refused.text
        [others] = await alerts_of(http, settings, notification, OTHER)
        assert others["match_id"] == match_id
        for intruder in (COLLEAGUE, WORKER):
            refused = await http.post(
                f"{notification}/api/alerts/{others['alert_id']}/acknowledge",
                headers=auth(settings, intruder),
            )
            assert refused.status_code == 404, refused.text
        # A case is the recipient's own: nobody else reads or acknowledges it.
        for outsider in (COLLEAGUE, OUTSIDER):
            for method, path in (("GET", ""), ("POST", "/acknowledge")):
                refused = await http.request(
                    method,
                    f"{notification}/api/cases/{match_id}{path}",
                    headers=auth(settings, outsider),
                )
                assert refused.status_code == 404, refused.text
        [others] = await alerts_of(http, settings, notification, OTHER)
        assert others["acknowledged_at"] is None

        # A worker of another team, logged in beside it, has nothing in their inbox.
        outsider_page = await log_in(browser, services, OUTSIDER, OUTSIDER_NAME)
        await expect(outsider_page.locator("#cases li")).to_have_text([nl("cases.none")])
        await expect(outsider_page.locator(f'[data-match-id="{match_id}"]')).to_have_count(0)
        assert match_id not in await outsider_page.content()
        # English on request, kept for this browser.
        await outsider_page.get_by_role("button", name=nl("language.other")).click()
        await expect(outsider_page.locator("#cases li")).to_have_text([EN["cases.none"]])
        assert await outsider_page.get_attribute("html", "lang") == "en"
        await expect(outsider_page.locator("#case-filters button").first).to_have_text(
            EN["filter.open"].format(n=0)
        )


COORDINATOR, COORDINATOR_NAME = "jgt-noord-1", "Sanne de Vries"
CASES = 200


async def test_a_coordinator_with_200_cases_pages_and_filters_them(
    settings: Settings, services: dict[str, str], partners: Producers, tmp_path: Path
) -> None:
    # Her colleague is away: every match of the team's wijken is hers to coordinate.
    code, out, err = await run_cli(
        settings, "roster", "deactivate", "jgt-noord-2", operator="beheer-jan"
    )
    assert code == 0, out + err
    children = synthetic_bsns(CASES, random.Random())
    for partner, worker, name, theme in (
        (JGZ, WORKER, WORKER_NAME, Category.OPVOEDVRAGEN),
        (SCHOOL, OTHER, OTHER_NAME, Category.SCHOOLVERZUIM),
    ):
        rows = [
            {**registration(child, worker, name, theme), "household_id": f"HH-{n}"}
            for n, child in enumerate(children)
        ]
        sent = await partners(partner).send_file(
            export(tmp_path / f"{partner}.csv", rows), today=datetime.now(UTC).date()
        )
        assert sent.sent == CASES

    async with chromium() as browser:
        page = await log_in(browser, services, COORDINATOR, COORDINATOR_NAME)
        tabs = page.locator("#case-filters button")
        await expect(tabs).to_have_text(
            [nl("filter.open", n=CASES), nl("filter.waiting", n=CASES), nl("filter.closed", n=0)],
            timeout=240_000,
        )
        cards = page.locator("#cases li[data-match-id]")
        await expect(cards).to_have_count(25)
        pager = page.locator("#case-pager")
        await expect(pager).to_contain_text(nl("pager.page", page=1, pages=8))
        await expect(pager.get_by_role("button", name=nl("pager.previous"))).to_be_disabled()
        first_page = set(await cards.evaluate_all("cs => cs.map(c => c.dataset.matchId)"))

        await pager.get_by_role("button", name=nl("pager.next")).click()
        await expect(pager).to_contain_text(nl("pager.page", page=2, pages=8))
        await expect(cards).to_have_count(25)
        second_page = set(await cards.evaluate_all("cs => cs.map(c => c.dataset.matchId)"))
        if len(first_page | second_page) != 50:  # say what the service answers now
            cases = f"{services['notification']}/api/cases?filter=open&page="
            asked = auth(settings, COORDINATOR)
            answers = [
                [
                    (c["match_id"], c["latest_at"])
                    for c in (await get_json(cases + n, asked))["cases"]
                ]
                for n in ("1", "2")
            ]
            raise AssertionError(f"pages overlap: {first_page & second_page}; now: {answers}")

        # One case acknowledged: no longer waiting for her.
        done = await cards.first.get_attribute("data-match-id")
        await cards.first.locator("button.acknowledge").click()
        await expect(tabs.nth(1)).to_have_text(nl("filter.waiting", n=CASES - 1))
        await expect(page.locator("#waiting")).to_have_text(nl("waiting", n=CASES - 1))

        await tabs.nth(1).click()
        await expect(tabs.nth(1)).to_have_attribute("aria-pressed", "true")
        await expect(pager).to_contain_text(nl("pager.page", page=1, pages=8))
        for _ in range(7):
            await expect(page.locator(f'#cases li[data-match-id="{done}"]')).to_have_count(0)
            await pager.get_by_role("button", name=nl("pager.next")).click()
        await expect(pager).to_contain_text(nl("pager.page", page=8, pages=8))
        await expect(cards).to_have_count((CASES - 1) % 25 or 25)
        await expect(pager.get_by_role("button", name=nl("pager.next"))).to_be_disabled()

        await assert_accessible(page, "a coordinator's inbox on its last page")
        await tabs.nth(2).click()
        await expect(page.locator("#cases li")).to_have_text([nl("cases.none")])
        await expect(page.locator("#error")).to_be_hidden()

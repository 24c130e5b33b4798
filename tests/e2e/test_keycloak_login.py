"""Logging in through a real identity provider: Keycloak (its server distribution from
Maven Central, on the local JDK, started like Kafka) with the realm export the operators
import (`deploy/keycloak/vroegsignaal-realm.json`). A worker logs in to the inbox at
Keycloak's own login page and sees a case arrive, made by a teacher who logged in at
Keycloak to the partners' registration desk (her phone from Keycloak's claim); the
privacy officer logs in to the audit page and finds that worker's reads; the worker is
refused the audit page."""

from __future__ import annotations

import base64
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from shared.contracts import Category
from shared.settings import REPO_ROOT, Settings
from tests.conftest import eventually
from tests.e2e.conftest import Desk
from tests.e2e.test_inbox_browser import (
    OTHER,
    OTHER_NAME,
    WORKER,
    WORKER_NAME,
    chromium,
    nl,
    registration,
    send_with_cli,
)
from tests.e2e.test_pipeline import BORN, JGZ
from vroegsignaal.dev.stack.keycloak import (
    REALM,
    REALM_EXPORT,
    KeycloakServer,
    realm_from_export,
)
from vroegsignaal.dev.stack.procs import free_port
from vroegsignaal.partner.bsn import synthetic_bsns
from vroegsignaal.provision.secrets import Secrets
from vroegsignaal.services import SERVICES

pytestmark = pytest.mark.e2e

AUDIT_NL = json.loads((REPO_ROOT / "services/audit/web/i18n/nl.json").read_text())
DESK_NL = json.loads((REPO_ROOT / "vroegsignaal/partner/desk/web/i18n/nl.json").read_text())
VERSION_4_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
# Keycloak accounts of the test (synthetic people): the inbox's worker and the privacy
# officer, each with the attributes the realm maps into the token.
PASSWORD = "een-lang-wachtwoord-voor-de-test"  # a test account's
FG_ID, FG_NAME = "fg-voorbeeldrade", "Fenna Gegevens"
ACCOUNTS: dict[str, dict[str, Any]] = {
    "noor.hendriks": {
        "first_name": "Noor",
        "last_name": "Hendriks",
        "email": "noor.hendriks@voorbeeldrade.example",
        "attributes": {"org": "JGZ Voorbeeldrade", "worker_id": WORKER},
        "roles": ["worker"],
    },
    # A teacher who registers on the desk: her phone is known to Keycloak only.
    "lotte.dejong": {
        "first_name": "Lotte",
        "last_name": "de Jong",
        "email": "lotte.dejong@voorbeeldrade.example",
        "attributes": {
            "org": "Basisschool De Regenboog",
            "worker_id": OTHER,
            "phone_number": "+31 6 2000 0001",
        },
        "roles": ["worker"],
    },
    "fenna.gegevens": {
        "first_name": "Fenna",
        "last_name": "Gegevens",
        "email": "fenna.gegevens@voorbeeldrade.example",
        "attributes": {"org": "Gemeente Voorbeeldrade", "worker_id": FG_ID},
        "roles": ["privacy_officer"],
    },
}


@pytest.fixture(scope="module")
def keycloak(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeycloakServer]:
    server = KeycloakServer(tmp_path_factory.mktemp("keycloak"), free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def realm(keycloak: KeycloakServer, settings: Settings, desk_port: int) -> Iterator[str]:
    """The shipped realm export, imported with this test's service addresses, and its
    accounts; the issuer's address. Removed after the test."""
    values = {
        "VS_INBOX_URL": f"http://127.0.0.1:{settings.notification_port}",
        "VS_AUDIT_URL": f"http://127.0.0.1:{settings.audit_port}",
        "VS_DESK_URL": f"http://127.0.0.1:{desk_port}",
    }
    admin = keycloak.admin()
    try:
        admin.import_realm(realm_from_export(REALM_EXPORT.read_text(), values))
        for username, account in ACCOUNTS.items():
            admin.add_user(REALM, username=username, password=PASSWORD, **account)
        yield keycloak.issuer()
    finally:
        admin.http.delete(f"/{REALM}")
        admin.close()


@pytest.fixture
def extra_env(realm: str) -> dict[str, dict[str, str]]:
    """Every service takes Keycloak's tokens, and the worker id from its `worker_id`."""
    oidc = {"VS_OIDC_ISSUER": realm, "VS_OIDC_USER_CLAIM": "worker_id"}
    return {name: oidc for name in (*SERVICES, "desk")}


async def log_in_at_keycloak(browser: Browser, page_url: str, realm: str, username: str) -> Page:
    page = await (await browser.new_context()).new_page()
    await page.goto(page_url)
    await page.click("#login-button")
    await page.wait_for_url(lambda url: url.startswith(f"{realm}/protocol/openid-connect/auth?"))
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#kc-login")
    await page.wait_for_url(page_url)
    return page


def claims_of(token: str) -> dict[str, Any]:
    """The payload of a JWT as issued (its signature is the services' to check)."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


async def test_a_worker_and_the_privacy_officer_log_in_through_keycloak(
    settings: Settings,
    secrets: Secrets,
    realm: str,
    services: dict[str, str],
    desk: Desk,
    tmp_path: Path,
) -> None:
    inbox = f"{services['notification']}/inbox/"
    audit_page = f"{services['audit']}/audit/ui/"
    (child,) = synthetic_bsns(1, random.Random())
    async with chromium() as browser:
        page = await log_in_at_keycloak(browser, inbox, realm, "noor.hendriks")
        await expect(page.locator("#who")).to_have_text(f"{WORKER_NAME} (worker)")
        await expect(page.locator("#cases li")).to_have_text([nl("cases.none")])

        # What Keycloak issued, as the realm export configures it: for vroegsignaal, with
        # only vroegsignaal's roles, the organisation and the worker id as partners know it.
        token = await page.evaluate("sessionStorage.getItem('access_token')")
        claims = claims_of(token)
        assert claims["iss"] == realm
        assert "vroegsignaal" in claims["aud"]
        assert claims["azp"] == "vroegsignaal-inbox"
        assert claims["roles"] == ["worker"]  # no offline_access, no default roles
        assert (claims["org"], claims["worker_id"]) == ("JGZ Voorbeeldrade", WORKER)
        assert VERSION_4_UUID.fullmatch(claims["sub"])  # Keycloak's own id, not the worker's

        # A case for the worker arrives in the page opened with Keycloak's token.
        await send_with_cli(
            settings, secrets, tmp_path, JGZ,
            [registration(child, WORKER, WORKER_NAME, Category.OPVOEDVRAGEN)],
        )  # fmt: skip
        # The school's teacher registers the same youth on the desk, logged in at Keycloak.
        registering = await log_in_at_keycloak(
            browser, f"{desk.url}/registratie/", realm, "lotte.dejong"
        )
        await expect(registering.locator("#contact")).to_have_text(
            f"{OTHER_NAME} · lotte.dejong@voorbeeldrade.example · +31 6 2000 0001"
        )
        await registering.locator("#child-bsn").press_sequentially(child)
        await registering.fill("#born", BORN.isoformat())
        await registering.select_option("#category", Category.SCHOOLVERZUIM.value)
        await registering.select_option("#wijk", "WK099901")
        await registering.click("#submit")
        await expect(registering.locator("#result")).to_contain_text(
            DESK_NL["sent.number"].split("{")[0], timeout=30_000
        )
        await expect(page.locator("#cases li[data-match-id]")).to_have_count(1, timeout=60_000)

        # The same Keycloak session does not open the audit log for a worker.
        await page.goto(audit_page)
        await page.click("#login-button")
        await page.wait_for_url(audit_page)  # logged in without a form: the session
        await expect(page.locator("#error")).to_have_text(AUDIT_NL["only.fg"])
        await expect(page.locator("#who")).to_have_text(f"{WORKER_NAME} (worker)")
        await expect(page.locator("#search-section")).to_be_hidden()

        # The privacy officer logs in there and finds what the worker read, by worker id.
        officer = await log_in_at_keycloak(browser, audit_page, realm, "fenna.gegevens")
        await expect(officer.locator("#who")).to_have_text(f"{FG_NAME} (privacy_officer)")
        await officer.fill("#search input[name=user]", WORKER)
        rows = officer.locator("#results tbody tr")

        async def found() -> int:
            # The reads reach the log through the outbox and Kafka: search again.
            await officer.click("#search button[type=submit]")
            await officer.wait_for_load_state("networkidle")
            return await rows.count()

        await eventually(found, timeout=30, interval=1)
        await expect(rows.first).to_contain_text(WORKER)
        await expect(officer.locator("#error")).to_be_hidden()

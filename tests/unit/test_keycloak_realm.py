"""The Keycloak realm export operators import: what it must never allow, and how its
placeholders are filled. (That Keycloak accepts it and a browser logs in through it is
tests/e2e/test_keycloak_login.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.auth import Role
from vroegsignaal.dev.stack.keycloak import REALM_EXPORT, realm_from_export
from vroegsignaal.provision.errors import StackError

ORIGINS = {
    "VS_INBOX_URL": "https://inbox.example.nl",
    "VS_AUDIT_URL": "https://fg.example.nl",
    "VS_DESK_URL": "https://melden.example.nl",
}


@pytest.fixture(scope="module")
def realm() -> dict[str, Any]:
    return realm_from_export(REALM_EXPORT.read_text(), ORIGINS)


def the_client(realm: dict[str, Any]) -> dict[str, Any]:
    [client] = [c for c in realm["clients"] if c["clientId"] == "vroegsignaal-inbox"]
    return client


def test_the_client_is_public_with_pkce_and_no_other_flow(realm: dict[str, Any]) -> None:
    client = the_client(realm)

    assert client["publicClient"] is True
    assert client["standardFlowEnabled"] is True
    assert client["attributes"]["pkce.code.challenge.method"] == "S256"
    for flow in ("implicitFlowEnabled", "directAccessGrantsEnabled", "serviceAccountsEnabled"):
        assert client[flow] is False, flow
    assert client["redirectUris"] == [
        "https://inbox.example.nl/inbox/",
        "https://fg.example.nl/audit/ui/",
        "https://melden.example.nl/registratie/",
    ]
    assert client["webOrigins"] == [
        "https://inbox.example.nl",
        "https://fg.example.nl",
        "https://melden.example.nl",
    ]
    assert not any("*" in uri for uri in client["redirectUris"] + client["webOrigins"])


def test_tokens_carry_the_audience_and_only_vroegsignaals_roles(realm: dict[str, Any]) -> None:
    client = the_client(realm)
    mappers = {m["name"]: m for m in client["protocolMappers"]}

    assert mappers["audience vroegsignaal"]["config"]["included.custom.audience"] == "vroegsignaal"
    assert mappers["roles"]["config"]["claim.name"] == "roles"
    for attribute in ("org", "worker_id", "phone_number"):
        config = mappers[attribute]["config"]
        assert (config["user.attribute"], config["claim.name"]) == (attribute, attribute)
        assert config["access.token.claim"] == "true"
    # Full scope off and a scope mapping of exactly the five roles: no other realm role.
    assert client["fullScopeAllowed"] is False
    [mapping] = [m for m in realm["scopeMappings"] if m["client"] == "vroegsignaal-inbox"]
    assert set(mapping["roles"]) == {r.value for r in Role}
    assert {r["name"] for r in realm["roles"]["realm"]} == {r.value for r in Role}


def test_only_an_administrator_sets_a_persons_organisation_or_worker_id(
    realm: dict[str, Any],
) -> None:
    [profile] = realm["components"]["org.keycloak.userprofile.UserProfileProvider"]
    config = json.loads(profile["config"]["kc.user.profile.config"][0])
    attributes = {a["name"]: a for a in config["attributes"]}

    for name in ("org", "worker_id", "phone_number", "username", "email", "firstName", "lastName"):
        assert attributes[name]["permissions"]["edit"] == ["admin"], name
    for name in ("org", "worker_id"):
        assert "admin" in attributes[name]["required"]["roles"], name
    # An attribute the profile does not declare cannot be set by its user either.
    assert config["unmanagedAttributePolicy"] in ("ADMIN_VIEW", "ADMIN_EDIT")
    assert realm["registrationAllowed"] is False
    assert realm["bruteForceProtected"] is True


def test_every_placeholder_needs_a_value() -> None:
    with pytest.raises(StackError) as missing:
        realm_from_export(REALM_EXPORT.read_text(), {"VS_INBOX_URL": "https://inbox.example.nl"})

    assert "VS_AUDIT_URL" in str(missing.value) and "VS_DESK_URL" in str(missing.value)
    assert "VS_INBOX_URL" not in str(missing.value)

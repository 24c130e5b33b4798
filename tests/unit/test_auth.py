"""Bearer-token authentication against the real demo issuer, served by uvicorn in-process:
what a token must be to pass, why each bad one fails, and the browser-less login flow."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey
from typer.testing import CliRunner

from shared.auth import AuthError, Principal, Role, TokenVerifier, bearer_token
from shared.settings import REPO_ROOT, Settings, get_settings
from vroegsignaal.dev.issuer_cli import issuer_app
from vroegsignaal.dev.stack.issuer import (
    DemoUsersError,
    create_issuer_app,
    load_demo_users,
    load_signing_key,
    mint_token,
)
from vroegsignaal.dev.stack.procs import free_port
from vroegsignaal.provision.secrets import ensure_issuer_key

USERS_FILE = REPO_ROOT / "config" / "demo-users.yaml"
AUDIENCE = "vroegsignaal"
CLIENT_ID = "vroegsignaal-inbox"
REDIRECT_URI = "http://127.0.0.1:8103/inbox/callback"


@dataclass(frozen=True)
class Issuer:
    url: str
    key_file: Path

    def mint(self, sub: str = "jgt-noord-1", **kwargs: Any) -> str:
        user = load_demo_users(USERS_FILE)[sub]
        return mint_token(self.key_file, kwargs.pop("issuer", self.url), AUDIENCE, user, **kwargs)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.url, "aud": AUDIENCE, "sub": "jgt-noord-1", "iat": now}
        return claims | {"nbf": now, "exp": now + 600} | overrides

    @property
    def kid(self) -> str:
        return str(load_signing_key(self.key_file).kid)


@asynccontextmanager
async def running_issuer(directory: Path) -> AsyncIterator[Issuer]:
    port = free_port()
    settings = Settings(
        oidc_issuer=f"http://127.0.0.1:{port}",
        issuer_port=port,
        issuer_key_file=directory / "issuer-key.pem",
    )
    app = create_issuer_app(settings, USERS_FILE)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise AssertionError("the issuer stopped before it started")
        await asyncio.sleep(0.01)
    try:
        yield Issuer(settings.oidc_issuer, directory / "issuer-key.pem")
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="module")
async def issuer(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Issuer]:
    async with running_issuer(tmp_path_factory.mktemp("issuer")) as started:
        yield started


@pytest.fixture
async def verifier(issuer: Issuer) -> AsyncIterator[TokenVerifier]:
    checker = TokenVerifier(issuer.url, AUDIENCE)
    yield checker
    await checker.aclose()


async def refused(verifier: TokenVerifier, token: str) -> AuthError:
    with pytest.raises(AuthError) as failed:
        await verifier.verify(token)
    assert not token or token not in str(failed.value)
    return failed.value


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def stranger_key() -> ECKey:
    """A key the issuer never published."""
    return ECKey.generate_key("P-256")


def well_formed_token() -> str:
    claims = {"iss": "x", "aud": AUDIENCE, "sub": "jgt-noord-1", "exp": int(time.time()) + 60}
    return jwt.encode({"alg": "ES256", "kid": "k1"}, claims, stranger_key())


# --- the resource server's side ---------------------------------------------------------


async def test_a_minted_token_verifies_to_the_users_principal(
    issuer: Issuer, verifier: TokenVerifier
) -> None:
    before = time.time()
    principal = await verifier.verify(issuer.mint("jgt-noord-1"))

    assert principal.expires_at is not None
    assert before + 3000 < principal.expires_at < before + 3700  # an hour's token
    assert principal == Principal(
        user_id="jgt-noord-1",
        name="Sanne de Vries",
        roles=frozenset({Role.WORKER}),
        organisation="JGT Noord",
        email="jgt-noord-1@voorbeeldrade.example",
        expires_at=principal.expires_at,
    )
    assert principal.has(Role.WORKER)
    assert not principal.has(Role.TEAM_LEAD)


async def test_unknown_roles_are_ignored_and_optional_claims_may_be_absent(
    issuer: Issuer, verifier: TokenVerifier
) -> None:
    key = load_signing_key(issuer.key_file)
    token = jwt.encode(
        {"alg": "ES256", "kid": issuer.kid},
        issuer.claims(sub="someone", roles=["regie", "superuser", 7]),
        key,
    )

    principal = await verifier.verify(token)

    assert principal.roles == frozenset({Role.REGIE})
    assert (principal.name, principal.organisation, principal.email) == ("someone", None, None)


async def test_the_worker_id_comes_from_the_configured_claim_and_its_absence_is_refused(
    issuer: Issuer,
) -> None:
    """A provider with its own subject ids (Keycloak's are UUIDs) names the worker as the
    partners do in another claim; a token without that claim names no one."""
    key = load_signing_key(issuer.key_file)
    header = {"alg": "ES256", "kid": issuer.kid}
    mapped = jwt.encode(
        header,
        issuer.claims(sub="5f0c8a4e-keycloak-uuid", worker_id="jgz-voorbeeldrade-1"),
        key,
    )
    unmapped = jwt.encode(header, issuer.claims(sub="5f0c8a4e-keycloak-uuid"), key)
    checker = TokenVerifier(issuer.url, AUDIENCE, user_claim="worker_id")
    try:
        principal = await checker.verify(mapped)
        missing = await refused(checker, unmapped)
    finally:
        await checker.aclose()

    assert (principal.user_id, principal.name) == ("jgz-voorbeeldrade-1", "jgz-voorbeeldrade-1")
    assert missing.status == 401
    assert "'worker_id'" in str(missing) and "VS_OIDC_USER_CLAIM" in str(missing)


async def test_an_expired_token_is_refused_but_clock_skew_within_the_leeway_is_not(
    issuer: Issuer, verifier: TokenVerifier
) -> None:
    hour_ago = int(time.time()) - 3600
    expired = await refused(verifier, issuer.mint(now=hour_ago - 60, lifetime=3600))
    assert (expired.status, str(expired)) == (401, "token expired: log in again")

    just_expired = issuer.mint(now=hour_ago - 10, lifetime=3600)
    assert (await verifier.verify(just_expired)).user_id == "jgt-noord-1"


async def test_a_token_for_another_audience_is_refused(
    issuer: Issuer, verifier: TokenVerifier
) -> None:
    user = load_demo_users(USERS_FILE)["jgt-noord-1"]
    token = mint_token(issuer.key_file, issuer.url, "other-app", user)

    failed = await refused(verifier, token)

    assert failed.status == 401
    assert str(failed).startswith("token audience 'other-app' is not 'vroegsignaal'")


async def test_an_audience_list_must_contain_ours(issuer: Issuer, verifier: TokenVerifier) -> None:
    key = load_signing_key(issuer.key_file)
    header = {"alg": "ES256", "kid": issuer.kid}
    ours = jwt.encode(header, issuer.claims(aud=["other-app", AUDIENCE]), key)
    theirs = jwt.encode(header, issuer.claims(aud=["other-app", "third-app"]), key)

    assert (await verifier.verify(ours)).user_id == "jgt-noord-1"
    assert "token audience ['other-app', 'third-app']" in str(await refused(verifier, theirs))


async def test_a_token_from_another_issuer_is_refused(
    issuer: Issuer, verifier: TokenVerifier
) -> None:
    failed = await refused(verifier, issuer.mint(issuer="http://127.0.0.1:1"))

    assert failed.status == 401
    assert str(failed) == (
        f"token issuer 'http://127.0.0.1:1' is not '{issuer.url}': log in at {issuer.url}"
    )


async def test_a_token_signed_by_another_key_under_the_issuers_kid_is_refused(
    issuer: Issuer, verifier: TokenVerifier
) -> None:
    forger = ECKey.generate_key("P-256")
    token = jwt.encode({"alg": "ES256", "kid": issuer.kid}, issuer.claims(), forger)

    failed = await refused(verifier, token)

    assert failed.status == 401
    assert str(failed).startswith(f"token signature does not verify with key '{issuer.kid}'")


async def test_a_token_signed_by_an_unknown_key_is_refused(
    issuer: Issuer, verifier: TokenVerifier
) -> None:
    token = jwt.encode({"alg": "ES256", "kid": "not-published"}, issuer.claims(), stranger_key())

    failed = await refused(verifier, token)

    assert failed.status == 401
    assert str(failed).startswith("unknown signing key 'not-published'")


async def test_unsigned_and_symmetric_tokens_are_refused_by_algorithm(
    issuer: Issuer, verifier: TokenVerifier
) -> None:
    claims = json.dumps(issuer.claims()).encode()
    unsigned = b64(b'{"alg":"none","typ":"JWT"}') + "." + b64(claims) + "."
    hmac_signed = jwt.encode(
        {"alg": "HS256", "kid": issuer.kid},
        issuer.claims(),
        OctKey.generate_key(256),
        algorithms=["HS256"],
    )

    for token, alg in ((unsigned, "none"), (hmac_signed, "HS256")):
        failed = await refused(verifier, token)
        assert failed.status == 401
        assert str(failed).startswith(f"token algorithm '{alg}' is not accepted")
    with pytest.raises(ValueError, match="not safe"):
        TokenVerifier(issuer.url, AUDIENCE, algorithms=("ES256", "HS256"))


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "a.b.c.d.e", "é.é.é"])
async def test_a_malformed_token_is_refused(verifier: TokenVerifier, token: str) -> None:
    failed = await refused(verifier, token)

    assert failed.status == 401
    assert str(failed).startswith("malformed token")


async def test_a_token_without_a_subject_is_refused(
    issuer: Issuer, verifier: TokenVerifier
) -> None:
    claims = issuer.claims()
    del claims["sub"]
    token = jwt.encode(
        {"alg": "ES256", "kid": issuer.kid}, claims, load_signing_key(issuer.key_file)
    )

    failed = await refused(verifier, token)

    assert str(failed) == "token lacks the claim(s) sub: the issuer must include them"


def http_scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/", "headers": list(headers)}


async def test_the_bearer_token_is_taken_from_the_authorization_header(
    issuer: Issuer, verifier: TokenVerifier
) -> None:
    token = issuer.mint("teamlead-zuid")
    scope = http_scope((b"host", b"x"), (b"authorization", f"bearer {token}".encode()))

    assert bearer_token(scope) == token
    principal = await verifier.authenticate(scope)
    assert (principal.user_id, principal.roles) == ("teamlead-zuid", frozenset({Role.TEAM_LEAD}))


@pytest.mark.parametrize(
    "headers",
    [
        (),
        ((b"authorization", b"Basic dXNlcjpwYXNz"),),
        ((b"authorization", b"Bearer "),),
        ((b"authorization", b"Bearer a.b.c"), (b"authorization", b"Bearer d.e.f")),
    ],
)
def test_a_request_without_one_bearer_token_is_refused(
    headers: tuple[tuple[bytes, bytes], ...],
) -> None:
    with pytest.raises(AuthError) as failed:
        bearer_token(http_scope(*headers))

    assert failed.value.status == 401
    assert "no bearer token: send 'Authorization: Bearer <token>'" in str(failed.value)
    assert failed.value.www_authenticate.startswith('Bearer realm="vroegsignaal"')
    assert "dXNlcjpwYXNz" not in str(failed.value)


async def test_an_unreachable_issuer_gives_503_naming_it() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    checker = TokenVerifier(nowhere, AUDIENCE)
    try:
        with pytest.raises(AuthError) as failed:
            await checker.verify(well_formed_token())
    finally:
        await checker.aclose()

    assert failed.value.status == 503
    assert f"the identity provider {nowhere} is unreachable" in str(failed.value)


async def test_a_token_with_a_new_key_is_accepted_after_the_issuer_rotates(
    tmp_path: Path,
) -> None:
    async with running_issuer(tmp_path) as rotating:
        checker = TokenVerifier(rotating.url, AUDIENCE, min_refresh_seconds=0)
        try:
            old_token = rotating.mint()
            old_kid = rotating.kid
            assert (await checker.verify(old_token)).user_id == "jgt-noord-1"

            rotating.key_file.write_bytes(ECKey.generate_key("P-256").as_pem(private=True))
            new_token = rotating.mint("jgt-zuid-1")

            assert rotating.kid != old_kid
            assert (await checker.verify(new_token)).user_id == "jgt-zuid-1"
            assert (await checker.verify(old_token)).user_id == "jgt-noord-1"
        finally:
            await checker.aclose()


async def test_unknown_keys_refresh_the_key_set_at_most_once_a_while(
    issuer: Issuer,
) -> None:
    fetched: list[str] = []

    async def count(request: httpx.Request) -> None:
        fetched.append(request.url.path)

    client = httpx.AsyncClient(event_hooks={"request": [count]})
    checker = TokenVerifier(issuer.url, AUDIENCE, client=client, min_refresh_seconds=0.3)
    try:
        await checker.verify(issuer.mint())
        await checker.verify(issuer.mint())
        assert fetched.count("/jwks") == 1  # cached

        await asyncio.sleep(0.4)
        forged = [
            jwt.encode({"alg": "ES256", "kid": f"k{i}"}, issuer.claims(), stranger_key())
            for i in range(3)
        ]
        results = await asyncio.gather(*(checker.verify(t) for t in forged), return_exceptions=True)
    finally:
        await client.aclose()

    assert all(isinstance(r, AuthError) and r.status == 401 for r in results)
    assert fetched.count("/jwks") == 2  # one refresh for the three unknown keys


# --- the demo issuer --------------------------------------------------------------------


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, b64(hashlib.sha256(verifier.encode()).digest())


def authorization_params(challenge: str, **overrides: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "state": "st-123",
        "nonce": "n-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    } | overrides


@pytest.fixture
async def browser(issuer: Issuer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=issuer.url, follow_redirects=False) as client:
        yield client


async def log_in(browser: httpx.AsyncClient, sub: str, challenge: str) -> str:
    """Pick `sub` on the login page; the code the issuer redirects back with."""
    answer = await browser.post("/authorize", data=authorization_params(challenge) | {"user": sub})
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    query = parse_qs(location.query)
    assert query["state"] == ["st-123"]
    return query["code"][0]


def token_request(code: str, verifier: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": CLIENT_ID,
        "code_verifier": verifier,
    }


async def test_discovery_and_jwks_describe_the_issuer_to_a_browser_app(
    issuer: Issuer, browser: httpx.AsyncClient
) -> None:
    discovery = await browser.get("/.well-known/openid-configuration")
    jwks = await browser.get("/jwks")
    preflight = await browser.options(
        "/token",
        headers={"origin": "http://127.0.0.1:8103", "access-control-request-method": "POST"},
    )

    doc = discovery.json()
    assert doc["issuer"] == issuer.url
    assert doc["token_endpoint"] == f"{issuer.url}/token"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["id_token_signing_alg_values_supported"] == ["ES256"]
    assert [k["kid"] for k in jwks.json()["keys"]] == [issuer.kid]
    assert "d" not in jwks.json()["keys"][0]  # never the private part
    assert preflight.status_code == 204
    for answer in (discovery, jwks, preflight):
        assert answer.headers["access-control-allow-origin"] == "*"


async def test_the_login_page_lists_every_demo_user_and_escapes_the_request(
    browser: httpx.AsyncClient,
) -> None:
    _, challenge = pkce()
    params = authorization_params(challenge, state='"><script>alert(1)</script>')

    page = await browser.get("/authorize", params=params)

    assert page.status_code == 200
    assert "<title>Local demo issuer" in page.text
    for sub, user in load_demo_users(USERS_FILE).items():
        assert f'data-user="{sub}"' in page.text
        assert user.name in page.text
    assert "<script>" not in page.text
    assert "&quot;&gt;&lt;script&gt;" in page.text


async def test_the_code_flow_gives_tokens_the_verifier_accepts(
    issuer: Issuer, browser: httpx.AsyncClient, verifier: TokenVerifier
) -> None:
    code_verifier, challenge = pkce()
    code = await log_in(browser, "jgt-zuid-1", challenge)

    answer = await browser.post("/token", data=token_request(code, code_verifier))

    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert (tokens["token_type"], tokens["expires_in"]) == ("Bearer", 3600)
    assert answer.headers["cache-control"] == "no-store"
    principal = await verifier.verify(tokens["access_token"])
    assert (principal.user_id, principal.name) == ("jgt-zuid-1", "Fatima el Amrani")
    assert principal.organisation == "JGT Zuid"
    identity = TokenVerifier(issuer.url, CLIENT_ID)
    try:
        assert (await identity.verify(tokens["id_token"])).user_id == "jgt-zuid-1"
    finally:
        await identity.aclose()
    assert jwt.decode(tokens["id_token"], load_signing_key(issuer.key_file)).claims["nonce"] == (
        "n-456"
    )


async def test_a_code_is_good_for_one_try_only(browser: httpx.AsyncClient) -> None:
    code_verifier, challenge = pkce()
    code = await log_in(browser, "jgt-noord-2", challenge)

    first = await browser.post("/token", data=token_request(code, code_verifier))
    again = await browser.post("/token", data=token_request(code, code_verifier))

    assert first.status_code == 200
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


async def test_a_wrong_pkce_verifier_is_refused_and_burns_the_code(
    browser: httpx.AsyncClient,
) -> None:
    code_verifier, challenge = pkce()
    code = await log_in(browser, "jgt-noord-2", challenge)
    wrong, _ = pkce()

    refused_answer = await browser.post("/token", data=token_request(code, wrong))
    late = await browser.post("/token", data=token_request(code, code_verifier))

    assert refused_answer.status_code == 400
    assert refused_answer.json() == {
        "error": "invalid_grant",
        "error_description": "code_verifier does not match the code_challenge (PKCE)",
    }
    assert late.json()["error"] == "invalid_grant"


async def test_a_code_redeemed_for_another_redirect_uri_is_refused(
    browser: httpx.AsyncClient,
) -> None:
    code_verifier, challenge = pkce()
    code = await log_in(browser, "jgt-noord-1", challenge)
    request = token_request(code, code_verifier) | {"redirect_uri": "http://127.0.0.1:9/cb"}

    answer = await browser.post("/token", data=request)

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        "http://evil.example/callback",
        "http://localhost@evil.example/callback",
        "http://127.0.0.1.evil.example/callback",
    ],
)
async def test_a_redirect_off_this_machine_is_refused(
    browser: httpx.AsyncClient, redirect_uri: str
) -> None:
    _, challenge = pkce()
    params = authorization_params(challenge, redirect_uri=redirect_uri)

    page = await browser.get("/authorize", params=params)
    posted = await browser.post("/authorize", data=params | {"user": "jgt-noord-1"})

    for answer in (page, posted):
        assert answer.status_code == 400
        assert "location" not in answer.headers
        assert "only returns to http://127.0.0.1 or http://localhost" in answer.text


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"client_id": "someone-else"}, "unknown client_id &#x27;someone-else&#x27;"),
        ({"code_challenge_method": "plain"}, "PKCE is required"),
        ({"response_type": "token"}, "response_type must be &#x27;code&#x27;"),
        ({"user": "nobody"}, "unknown demo user &#x27;nobody&#x27;"),
    ],
)
async def test_a_bad_authorization_request_is_refused_with_the_reason(
    browser: httpx.AsyncClient, overrides: dict[str, str], reason: str
) -> None:
    _, challenge = pkce()
    form = authorization_params(challenge) | {"user": "jgt-noord-1"} | overrides

    answer = await browser.post("/authorize", data=form)

    assert answer.status_code == 400
    assert reason in answer.text


async def test_an_unsupported_grant_type_is_an_rfc6749_error(browser: httpx.AsyncClient) -> None:
    answer = await browser.post("/token", data={"grant_type": "password", "username": "x"})

    assert answer.status_code == 400
    assert answer.json()["error"] == "unsupported_grant_type"
    assert answer.headers["access-control-allow-origin"] == "*"


# --- users file, key file, command line -------------------------------------------------


def test_the_shipped_demo_users_are_the_agreed_synthetic_people() -> None:
    users = load_demo_users(USERS_FILE)

    assert {sub: (u.roles, u.organisation) for sub, u in users.items()} == {
        "jgt-noord-1": ((Role.WORKER,), "JGT Noord"),
        "jgt-noord-2": ((Role.WORKER,), "JGT Noord"),
        "jgt-zuid-1": ((Role.WORKER,), "JGT Zuid"),
        "teamlead-noord": ((Role.TEAM_LEAD,), "JGT Noord"),
        "teamlead-zuid": ((Role.TEAM_LEAD,), "JGT Zuid"),
        "regie-voorbeeldrade": ((Role.REGIE,), "Gemeente Voorbeeldrade"),
        "fg-voorbeeldrade": ((Role.PRIVACY_OFFICER,), "Gemeente Voorbeeldrade"),
        "partner-admin": ((Role.PARTNER_ADMIN,), "Gemeente Voorbeeldrade"),
        "jgz-voorbeeldrade-1": ((Role.WORKER,), "JGZ Voorbeeldrade"),
        "huisartsen-centrum-1": ((Role.WORKER,), "Huisartsenpraktijk Centrum"),
        "veilig-thuis-regio-1": ((Role.WORKER,), "Veilig Thuis Regio Voorbeeldrade"),
        "school-de-regenboog-1": ((Role.WORKER,), "Basisschool De Regenboog"),
    }
    assert all(u.email == f"{sub}@voorbeeldrade.example" for sub, u in users.items())


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (
            "{sub: a-1, name: A, email: a@x.example, roles: [boss], organisation: O}",
            ":2: users.0.roles.0: not one of the allowed values (allowed: 'worker'",
        ),
        ("{sub: a-1, name: A, email: a@x.example, roles: [worker]}", "users.0.organisation"),
        ("not a mapping", ":2: users.0: expected a mapping"),
    ],
)
def test_a_broken_users_file_names_the_file_the_entry_and_the_fix(
    tmp_path: Path, entry: str, problem: str
) -> None:
    users_file = tmp_path / "users.yaml"
    users_file.write_text(f"users:\n  - {entry}\n")

    with pytest.raises(DemoUsersError) as failed:
        load_demo_users(users_file)

    assert str(failed.value).startswith(f"{users_file}:2: users.0")
    assert problem in str(failed.value)


def test_the_issuer_key_is_created_private_and_never_replaced(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "issuer.pem"

    ensure_issuer_key(key_file)
    kid = load_signing_key(key_file).kid
    ensure_issuer_key(key_file)

    assert key_file.stat().st_mode & 0o777 == 0o600
    assert load_signing_key(key_file).kid == kid


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_the_token_command_prints_a_token_the_verifier_accepts(
    issuer: Issuer,
    verifier: TokenVerifier,
    monkeypatch: pytest.MonkeyPatch,
    fresh_settings: None,
) -> None:
    monkeypatch.setenv("VS_OIDC_ISSUER", issuer.url)
    monkeypatch.setenv("VS_ISSUER_KEY_FILE", str(issuer.key_file))

    result = CliRunner().invoke(issuer_app, ["token", "regie-voorbeeldrade"])

    assert result.exit_code == 0, result.output
    principal = await verifier.verify(result.stdout.strip())
    assert principal.roles == frozenset({Role.REGIE})


def test_the_token_command_without_a_key_file_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    monkeypatch.delenv("VS_ISSUER_KEY_FILE", raising=False)

    result = CliRunner().invoke(issuer_app, ["token", "jgt-noord-1"])

    assert result.exit_code == 1
    assert "VS_ISSUER_KEY_FILE is not set" in result.output

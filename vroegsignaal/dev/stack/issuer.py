"""The local demo OpenID Connect issuer, for `make run` and tests only.

It lets a person pick one of the synthetic demo users (no password) and signs ES256
tokens for them through the authorization-code flow with PKCE, so the web APIs and the
inbox run exactly as they do against the municipality's identity provider in
production. Replacing the key file rotates the key; the previous one stays published so
tokens already handed out keep working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

from faststream.asgi.types import Receive, Scope, Send
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shared.auth import Role
from shared.config import each_once, load_yaml_model
from shared.contracts import PHONE_PATTERN
from shared.settings import Settings
from vroegsignaal.provision.errors import StackError
from vroegsignaal.provision.secrets import ensure_issuer_key

log = logging.getLogger(__name__)

ALGORITHM = "ES256"
CODE_SECONDS = 60
TOKEN_SECONDS = 3600
MAX_BODY_BYTES = 64 * 1024
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
PKCE_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
PKCE_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
CORS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
    (b"access-control-allow-headers", b"Content-Type, Authorization"),
    (b"access-control-max-age", b"600"),
]
NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]


class DemoUsersError(StackError):
    """The demo users file is broken; the message names the file, the entry and the fix."""


class IssuerKeyError(StackError):
    """The issuer's signing key is missing or unusable; the message says how to fix it."""


@dataclass(frozen=True)
class DemoUser:
    sub: str
    name: str
    email: str
    roles: tuple[Role, ...]
    organisation: str
    phone: str | None = None


Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]


class DemoUserEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sub: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
    name: Text
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$")]
    roles: list[Role] = Field(min_length=1)
    organisation: Text
    phone: Annotated[str, StringConstraints(pattern=PHONE_PATTERN)] | None = None


class DemoUsersFile(BaseModel):
    """`users:`, each with sub, name, email, roles and organisation (config/demo-users.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    users: list[DemoUserEntry] = Field(min_length=1)

    @field_validator("users")
    @classmethod
    def _each_once(cls, users: list[DemoUserEntry]) -> list[DemoUserEntry]:
        each_once([u.sub for u in users], "sub")
        return users


def load_demo_users(path: Path) -> dict[str, DemoUser]:
    """The demo users by `sub`, from a file like config/demo-users.yaml."""
    listed = load_yaml_model(DemoUsersFile, path, error=DemoUsersError, what="the demo users")
    return {
        u.sub: DemoUser(u.sub, u.name, u.email, tuple(u.roles), u.organisation, u.phone)
        for u in listed.users
    }


def load_signing_key(path: Path) -> ECKey:
    """The issuer's private key, its `kid` the RFC 7638 thumbprint."""
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise IssuerKeyError(
            f"{path}: no issuer key; 'vroegsignaal issuer serve' creates it, or point "
            "VS_ISSUER_KEY_FILE at the key the issuer uses"
        ) from None
    except OSError as exc:
        raise IssuerKeyError(f"{path}: cannot read the issuer key ({exc.strerror})") from None
    return _parse_key(pem, path)


def _parse_key(pem: bytes, path: Path) -> ECKey:
    try:
        key = ECKey.import_key(pem)
    except (JoseError, ValueError, TypeError):
        key = None
    if key is None or not key.is_private or key.curve_name != "P-256":
        raise IssuerKeyError(
            f"{path}: not a PEM EC P-256 private key; delete it and 'vroegsignaal issuer "
            "serve' makes a new one"
        )
    key.ensure_kid()
    return key


def mint_token(
    key_file: Path,
    issuer: str,
    audience: str,
    user: DemoUser,
    lifetime: int = TOKEN_SECONDS,
    *,
    now: int | None = None,
) -> str:
    """An access token for `user`, as the issuer's token endpoint gives it."""
    key = load_signing_key(key_file)
    return _sign(
        key,
        _access_claims(user, issuer, audience, int(time.time()) if now is None else now, lifetime),
    )


def _access_claims(
    user: DemoUser, issuer: str, audience: str, now: int, lifetime: int
) -> dict[str, Any]:
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": user.sub,
        "name": user.name,
        "email": user.email,
        "roles": [r.value for r in user.roles],
        "org": user.organisation,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
    }
    if user.phone:
        claims["phone_number"] = user.phone  # OIDC's standard claim
    return claims


def _sign(key: ECKey, claims: dict[str, Any]) -> str:
    return jwt.encode({"alg": ALGORITHM, "kid": key.kid}, claims, key, algorithms=[ALGORITHM])


class _KeyFile:
    """The signing key, read again when the file changes; the key it replaced stays
    published (not used) so that tokens signed with it still verify."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pem = b""
        self._current: ECKey | None = None
        self._previous: ECKey | None = None

    def current(self) -> ECKey:
        try:
            pem = self.path.read_bytes()
        except OSError:
            pem = self._pem  # a rewrite in progress: keep signing with the last good key
        if pem != self._pem or self._current is None:
            key = _parse_key(pem, self.path)
            if self._current is not None and key.kid != self._current.kid:
                self._previous = self._current
            self._pem, self._current = pem, key
        return self._current

    def published(self) -> list[ECKey]:
        current = self.current()
        return [current] if self._previous is None else [current, self._previous]


@dataclass(frozen=True)
class _AuthorizationRequest:
    client_id: str
    redirect_uri: str
    code_challenge: str
    state: str | None
    nonce: str | None


@dataclass(frozen=True)
class _Grant:
    request: _AuthorizationRequest
    user: DemoUser
    expires_at: float


class _Refused(Exception):
    """A request the issuer refuses: 400 with `reason` (and an RFC 6749 `error` code)."""

    def __init__(self, reason: str, error: str = "invalid_request", status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error
        self.status = status


class DemoIssuer:
    """The issuer as an ASGI app."""

    def __init__(self, settings: Settings, users_file: Path) -> None:
        if settings.issuer_key_file is None:
            raise IssuerKeyError(
                "VS_ISSUER_KEY_FILE is not set: name the file of the demo issuer's signing "
                "key (it is created when absent)"
            )
        ensure_issuer_key(settings.issuer_key_file)
        self.issuer = settings.oidc_issuer
        self.audience = settings.oidc_audience
        self.client_id = settings.oidc_client_id
        self.users = load_demo_users(users_file)
        self.keys = _KeyFile(settings.issuer_key_file)
        self.keys.current()  # a broken key file stops the start, not the first login
        self._base = self.issuer.rstrip("/")
        self._path = urlsplit(self._base).path
        self._grants: dict[str, _Grant] = {}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self._base}/authorize",
            "token_endpoint": f"{self._base}/token",
            "jwks_uri": f"{self._base}/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "subject_types_supported": ["public"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": ["openid", "profile", "email"],
            "claims_supported": ["sub", "name", "email", "roles", "org"],
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"].removeprefix(self._path)
        try:
            await self._route(method, path, scope, receive, send)
        except _Refused as refused:
            if path == "/authorize":
                await _html(send, refused.status, _refusal_page(refused.reason))
            else:
                await _json(send, refused.status, _error(refused.error, refused.reason), NO_STORE)

    async def _route(
        self, method: str, path: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        match method, path:
            case "OPTIONS", "/.well-known/openid-configuration" | "/jwks" | "/token":
                await _respond(send, 204, b"", headers=CORS)  # a browser app's preflight
            case "GET", "/.well-known/openid-configuration":
                await _json(send, 200, self.discovery())
            case "GET", "/jwks":
                keys = [k.as_dict(alg=ALGORITHM, use="sig") for k in self.keys.published()]
                await _json(send, 200, {"keys": keys})
            case "GET", "/authorize":
                request = self._authorization_request(_params(scope["query_string"]))
                await _html(send, 200, self._login_page(request))
            case "POST", "/authorize":
                form = _params(await _read_body(receive))
                location = self._authorize(self._authorization_request(form), form.get("user"))
                await _respond(send, 302, b"", headers=[(b"location", location.encode())])
            case "POST", "/token":
                tokens = await self._token(scope, await _read_body(receive))
                await _json(send, 200, tokens, NO_STORE)
            case _:
                await _respond(send, 404, b"not found: see /.well-known/openid-configuration")

    def _authorization_request(self, params: Mapping[str, str]) -> _AuthorizationRequest:
        client_id = params.get("client_id", "")
        if client_id != self.client_id:
            raise _Refused(
                f"unknown client_id {client_id!r}: this demo issuer serves only "
                f"{self.client_id!r} (VS_OIDC_CLIENT_ID)"
            )
        redirect_uri = params.get("redirect_uri", "")
        problem = _redirect_problem(redirect_uri)
        if problem:
            raise _Refused(f"redirect_uri {redirect_uri!r} refused: {problem}")
        if params.get("response_type") != "code":
            raise _Refused("response_type must be 'code' (the authorization-code flow)")
        if params.get("code_challenge_method") != "S256":
            raise _Refused("PKCE is required: send code_challenge_method=S256")
        challenge = params.get("code_challenge", "")
        if not PKCE_CHALLENGE.fullmatch(challenge):
            raise _Refused("code_challenge must be BASE64URL(SHA256(code_verifier)), 43 chars")
        state, nonce = params.get("state"), params.get("nonce")
        if len(state or "") > 1024 or len(nonce or "") > 1024:
            raise _Refused("state and nonce may have at most 1024 characters")
        return _AuthorizationRequest(client_id, redirect_uri, challenge, state, nonce)

    def _authorize(self, request: _AuthorizationRequest, sub: str | None) -> str:
        user = self.users.get(sub or "")
        if user is None:
            raise _Refused(f"unknown demo user {sub!r}: choose one of the listed users")
        now = time.monotonic()
        self._grants = {c: g for c, g in self._grants.items() if g.expires_at > now}
        code = secrets.token_urlsafe(32)
        self._grants[code] = _Grant(request, user, now + CODE_SECONDS)
        answer = {"code": code} | ({"state": request.state} if request.state is not None else {})
        separator = "&" if urlsplit(request.redirect_uri).query else "?"
        return f"{request.redirect_uri}{separator}{urlencode(answer)}"

    async def _token(self, scope: Scope, body: bytes) -> dict[str, Any]:
        content_type = _header(scope, b"content-type").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise _Refused("send the token request as application/x-www-form-urlencoded")
        form = _params(body)
        if form.get("grant_type") != "authorization_code":
            raise _Refused(
                "grant_type must be 'authorization_code'", error="unsupported_grant_type"
            )
        missing = [
            k for k in ("code", "redirect_uri", "client_id", "code_verifier") if not form.get(k)
        ]
        if missing:
            raise _Refused(f"missing {', '.join(missing)}")
        # Taken out before any check: a code is good for one try, right or wrong.
        grant = self._grants.pop(form["code"], None)
        if grant is None or grant.expires_at <= time.monotonic():
            raise _Refused(
                "the code is unknown, used or expired: start the login again",
                error="invalid_grant",
            )
        request = grant.request
        if form["client_id"] != request.client_id or form["redirect_uri"] != request.redirect_uri:
            raise _Refused(
                "client_id or redirect_uri differ from the authorization request",
                error="invalid_grant",
            )
        verifier = form["code_verifier"]
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if not PKCE_VERIFIER.fullmatch(verifier) or not hmac.compare_digest(
            challenge.rstrip(b"=").decode(), request.code_challenge
        ):
            raise _Refused(
                "code_verifier does not match the code_challenge (PKCE)", error="invalid_grant"
            )
        return self._tokens(grant)

    def _tokens(self, grant: _Grant) -> dict[str, Any]:
        key = self.keys.current()
        now = int(time.time())
        access = _access_claims(grant.user, self.issuer, self.audience, now, TOKEN_SECONDS)
        identity = access | {"aud": grant.request.client_id, "azp": grant.request.client_id}
        identity["auth_time"] = now
        if grant.request.nonce is not None:
            identity["nonce"] = grant.request.nonce
        return {
            "access_token": _sign(key, access | {"azp": grant.request.client_id}),
            "id_token": _sign(key, identity),
            "token_type": "Bearer",
            "expires_in": TOKEN_SECONDS,
        }

    def _login_page(self, request: _AuthorizationRequest) -> str:
        hidden = {
            "client_id": request.client_id,
            "redirect_uri": request.redirect_uri,
            "response_type": "code",
            "code_challenge": request.code_challenge,
            "code_challenge_method": "S256",
        }
        if request.state is not None:
            hidden["state"] = request.state
        if request.nonce is not None:
            hidden["nonce"] = request.nonce
        fields = "".join(
            f'<input type="hidden" name="{_e(k)}" value="{_e(v)}">' for k, v in hidden.items()
        )
        buttons = "".join(
            f'<li><button type="submit" name="user" value="{_e(u.sub)}" data-user="{_e(u.sub)}">'
            f"<strong>{_e(u.name)}</strong> <span>{_e(', '.join(u.roles))}</span> "
            f"<small>{_e(u.organisation)}</small></button></li>"
            for u in self.users.values()
        )
        return _page(
            "Local demo issuer",
            "<p>For <code>make run</code> and tests only: pick a synthetic user, no password. "
            "Production logs in at the municipality's identity provider.</p>"
            f"<p>Logging in to <code>{_e(request.client_id)}</code>, back to "
            f"<code>{_e(request.redirect_uri)}</code>.</p>"
            f'<form method="post" action="{_e(self._path)}/authorize">{fields}'
            f"<ul>{buttons}</ul></form>",
        )


def create_issuer_app(settings: Settings, users_file: Path) -> DemoIssuer:
    """The demo issuer at `settings.oidc_issuer`; creates the signing key when absent."""
    return DemoIssuer(settings, users_file)


def serve(settings: Settings, users_file: Path) -> None:
    """Run the demo issuer in the foreground on `http_host:issuer_port`."""
    import uvicorn

    from vroegsignaal.dev.stack.procs import require_free_port

    app = create_issuer_app(settings, users_file)
    require_free_port(settings.issuer_port, "the demo issuer", "VS_ISSUER_PORT")
    log.info("demo issuer %s with %d demo users (Ctrl-C stops it)", app.issuer, len(app.users))
    uvicorn.run(app, host=settings.http_host, port=settings.issuer_port, log_level="warning")


def _redirect_problem(uri: str) -> str | None:
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return "not a URL"
    if parts.scheme != "http" or parts.hostname not in LOCAL_HOSTS or port == 0:
        return "this demo issuer only returns to http://127.0.0.1 or http://localhost"
    if parts.username is not None or parts.password is not None or parts.fragment:
        return "a redirect_uri has no user, password or #fragment"
    return None


def _params(raw: bytes) -> dict[str, str]:
    """Query or form parameters; a repeated one is refused (RFC 6749 section 3.1)."""
    try:
        parsed = parse_qs(raw.decode(), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise _Refused("the parameters are not URL-encoded UTF-8") from None
    repeated = [k for k, v in parsed.items() if len(v) > 1]
    if repeated:
        raise _Refused(f"parameter(s) {', '.join(repeated)} given more than once")
    return {k: v[0] for k, v in parsed.items()}


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if len(body) > MAX_BODY_BYTES:
            raise _Refused("request body too large", status=413)
        if not message.get("more_body", False):
            return body


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = b"text/plain; charset=utf-8",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _json(
    send: Send, status: int, data: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(data).encode()
    await _respond(send, status, body, b"application/json", [*CORS, *(headers or [])])


async def _html(send: Send, status: int, page: str) -> None:
    # The login form posts here and is then redirected to the (local) client.
    policy = (
        b"default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
        b"form-action 'self' http://127.0.0.1:* http://localhost:*"
    )
    await _respond(
        send,
        status,
        page.encode(),
        b"text/html; charset=utf-8",
        [(b"content-security-policy", policy), (b"x-frame-options", b"DENY"), *NO_STORE],
    )


def _error(error: str, description: str) -> dict[str, str]:
    return {"error": error, "error_description": description}


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _refusal_page(reason: str) -> str:
    return _page("Local demo issuer: request refused", f"<p>{_e(reason)}</p>")


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)} | vroegsignaal</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto}"
        "ul{list-style:none;padding:0}li{margin:.4rem 0}"
        "button{width:100%;text-align:left;padding:.6rem;cursor:pointer}"
        "span,small{color:#555;margin-left:.5rem}</style></head>"
        f"<body><main><h1>{_e(title)}</h1>{body}</main></body></html>"
    )

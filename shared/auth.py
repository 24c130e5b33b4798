"""Who is calling: OpenID Connect bearer tokens checked against the issuer's published keys.

The web APIs are resource servers. A request carries `Authorization: Bearer <JWT>`; the
`TokenVerifier` finds the issuer's keys through OIDC discovery, checks signature, issuer,
audience and lifetime, and turns the claims into a `Principal`. Which principal may do
what is the caller's rule, not this module's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import JWKRegistry, Key
from joserfc.jwt import JWTClaimsRegistry

log = logging.getLogger(__name__)

MAX_TOKEN_CHARS = 16 * 1024
NO_TOKEN = "no bearer token: send 'Authorization: Bearer <token>' with a token from the issuer"  # noqa: S105
# Symmetric and unsigned tokens prove nothing about who issued them to a resource server.
FORBIDDEN_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})


class Role(StrEnum):
    WORKER = "worker"
    TEAM_LEAD = "team_lead"
    REGIE = "regie"
    PRIVACY_OFFICER = "privacy_officer"
    PARTNER_ADMIN = "partner_admin"


@dataclass(frozen=True)
class Principal:
    """The person behind a verified token; for a worker `user_id` is the worker id."""

    user_id: str
    name: str
    roles: frozenset[Role]
    organisation: str | None = None
    email: str | None = None
    expires_at: float | None = None  # the token's `exp` (unix seconds)
    phone: str | None = None  # the token's `phone_number`

    def has(self, role: Role) -> bool:
        return role in self.roles


class AuthError(Exception):
    """A request that may not pass: 401 (no or bad token), 403 (caller's rule), 503 (the
    issuer cannot be reached). The message names the problem and the fix, never the token."""

    def __init__(self, status: int, message: str, *, error: str | None = "invalid_token") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error

    @property
    def www_authenticate(self) -> str:
        """The RFC 6750 challenge for a 401 or 403 response."""
        challenge = 'Bearer realm="vroegsignaal"'
        if self.error is not None:
            description = self.message.replace("\\", "/").replace('"', "'")
            challenge += f', error="{self.error}", error_description="{description}"'
        return challenge


def bearer_token(scope: Mapping[str, Any]) -> str:
    """The bearer token of an ASGI HTTP request; AuthError 401 when there is none."""
    values = [v for k, v in scope.get("headers", ()) if bytes(k).lower() == b"authorization"]
    if not values:
        raise AuthError(401, NO_TOKEN, error=None)
    if len(values) > 1:
        raise AuthError(401, "more than one Authorization header: " + NO_TOKEN)
    scheme, _, token = bytes(values[0]).decode("latin-1").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        shown = scheme if scheme.isalpha() and len(scheme) < 20 else "another"
        raise AuthError(401, f"{NO_TOKEN} (got the {shown!r} scheme)", error=None)
    return token


@dataclass(frozen=True)
class _PublishedKey:
    kid: str | None
    key: Key


class TokenVerifier:
    """Verifies bearer tokens of one issuer for one audience; keeps the issuer's keys
    for `cache_seconds` and fetches them again early when a token names a new key."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        client: httpx.AsyncClient | None = None,
        cache_seconds: float = 300,
        leeway_seconds: int = 30,
        algorithms: Collection[str] = ("ES256", "RS256", "PS256", "EdDSA"),
        min_refresh_seconds: float = 10,
        user_claim: str = "sub",
    ) -> None:
        unsafe = FORBIDDEN_ALGORITHMS.intersection(algorithms)
        if unsafe:
            raise ValueError(f"algorithms {sorted(unsafe)} are not safe for bearer tokens")
        self.issuer = issuer
        self.audience = audience
        self.user_claim = user_claim
        self.algorithms = tuple(algorithms)
        self.cache_seconds = cache_seconds
        self.leeway_seconds = leeway_seconds
        self.min_refresh_seconds = min_refresh_seconds
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=5.0, follow_redirects=False)
        self._keys: list[_PublishedKey] | None = None
        self._fetched_at = 0.0
        self._attempted_at = 0.0
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def authenticate(self, scope: Mapping[str, Any]) -> Principal:
        """The principal of an ASGI request's bearer token."""
        return await self.verify(bearer_token(scope))

    async def verify(self, token: str) -> Principal:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise _malformed()
        try:
            signed = jws.extract_compact(token.encode("ascii"))
            header = signed.headers()
        except (JoseError, ValueError, TypeError):
            raise _malformed() from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.algorithms:
            raise AuthError(
                401,
                f"token algorithm {_short(alg)} is not accepted: this service takes tokens "
                f"signed with {', '.join(self.algorithms)} by {self.issuer}",
            )
        if kid is not None and not isinstance(kid, str):
            raise _malformed()
        key = await self._key_for(kid)
        try:
            claims = jwt.decode(token, key, algorithms=[alg]).claims
        except BadSignatureError:
            raise AuthError(
                401,
                f"token signature does not verify with key {_short(kid)} of {self.issuer}: "
                "the token was altered or not issued there; log in again",
            ) from None
        except (JoseError, ValueError, TypeError) as exc:
            raise AuthError(401, f"token rejected ({_jose_reason(exc)}): log in again") from None
        self._check_claims(claims)
        return _principal(claims, self.user_claim)

    def _check_claims(self, claims: dict[str, Any]) -> None:
        rules = JWTClaimsRegistry(
            leeway=self.leeway_seconds,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            sub={"essential": True},
            exp={"essential": True},
        )
        try:
            rules.validate(claims)
        except ExpiredTokenError:
            raise AuthError(401, "token expired: log in again") from None
        except MissingClaimError as exc:
            raise AuthError(
                401, f"token lacks the claim(s) {exc.claim}: the issuer must include them"
            ) from None
        except ClaimError as exc:
            raise AuthError(401, self._claim_problem(exc.claim, claims)) from None

    def _claim_problem(self, claim: str, claims: dict[str, Any]) -> str:
        value = _short(claims.get(claim))
        match claim:
            case "aud":
                return (
                    f"token audience {value} is not {self.audience!r}: "
                    "get a token issued for this service"
                )
            case "iss":
                return f"token issuer {value} is not {self.issuer!r}: log in at {self.issuer}"
            case "nbf":
                return "token is not valid yet: check the clocks of the issuer and this server"
            case "iat":
                return "token was issued in the future: check the clocks of the issuer and server"
            case _:
                return f"token claim {claim!r} is invalid ({value}): log in again"

    async def _key_for(self, kid: str | None) -> Key:
        seen = await self._published_keys(refresh=False)
        key = _pick(seen, kid)
        if key is None:
            # Key rotation: the issuer may have published a key after our last fetch.
            key = _pick(await self._published_keys(refresh=True), kid)
        if key is None:
            if kid is None:
                raise AuthError(
                    401,
                    f"token names no signing key ('kid') and {self.issuer} publishes several",
                )
            raise AuthError(
                401,
                f"unknown signing key {_short(kid)}: {self.issuer} does not publish it "
                "(a retired key, or a token from another issuer); log in again",
            )
        return key

    async def _published_keys(self, *, refresh: bool) -> list[_PublishedKey]:
        async with self._lock:
            now = time.monotonic()
            if self._keys is not None:
                fresh = now - self._fetched_at < self.cache_seconds
                recently_tried = now - self._attempted_at < self.min_refresh_seconds
                if (fresh and not refresh) or recently_tried:
                    return self._keys
            self._attempted_at = now
            try:
                self._keys = await self._fetch_keys()
            except AuthError:
                if self._keys is None:
                    raise
                log.warning("keeping the cached keys of %s: fetching them failed", self.issuer)
                return self._keys
            self._fetched_at = now
            return self._keys

    async def _fetch_keys(self) -> list[_PublishedKey]:
        base = self.issuer.rstrip("/")
        discovery = await self._get_json(f"{base}/.well-known/openid-configuration")
        if discovery.get("issuer") != self.issuer:
            raise AuthError(
                503,
                f"the discovery document of {self.issuer} names issuer "
                f"{_short(discovery.get('issuer'))}: set VS_OIDC_ISSUER to exactly that",
            )
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise AuthError(503, f"the discovery document of {self.issuer} has no jwks_uri")
        document = await self._get_json(jwks_uri)
        keys: list[_PublishedKey] = []
        entries = document.get("keys")
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                key = JWKRegistry.import_key(entry)
            except (JoseError, ValueError, TypeError):
                continue  # RFC 7517: skip a key this library cannot use, keep the others
            kid = entry.get("kid")
            keys.append(_PublishedKey(kid if isinstance(kid, str) else None, key))
        if not keys:
            raise AuthError(503, f"{self.issuer} publishes no usable signing key at {jwks_uri}")
        return keys

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._client.get(url, headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            raise AuthError(
                503,
                f"the identity provider {self.issuer} is unreachable ({url}: {exc!s} "
                f"[{type(exc).__name__}]): check that it runs and VS_OIDC_ISSUER names it",
            ) from None
        if response.status_code != 200:
            raise AuthError(
                503,
                f"the identity provider {self.issuer} answered {response.status_code} for {url}",
            )
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise AuthError(
                503, f"the identity provider {self.issuer} sent no JSON object at {url}"
            )
        return document


def _pick(keys: list[_PublishedKey], kid: str | None) -> Key | None:
    if kid is None:
        return keys[0].key if len(keys) == 1 else None
    return next((k.key for k in keys if k.kid == kid), None)


def _principal(claims: Mapping[str, Any], user_claim: str) -> Principal:
    raw_roles = claims.get("roles")
    if isinstance(raw_roles, str):
        raw_roles = [raw_roles]
    known = {r.value for r in Role}
    roles = frozenset(
        Role(r)
        for r in (raw_roles if isinstance(raw_roles, list) else [])
        if isinstance(r, str) and r in known
    )
    user_id = _text(claims.get(user_claim))
    if user_id is None:
        raise AuthError(
            401,
            f"token lacks the claim {user_claim!r} that names the worker as the partners' "
            "registrations do: the issuer must include it (or set VS_OIDC_USER_CLAIM)",
        )
    return Principal(
        user_id=user_id,
        name=_text(claims.get("name")) or user_id,
        roles=roles,
        organisation=_text(claims.get("org")),
        email=_text(claims.get("email")),
        phone=_text(claims.get("phone_number")),
        expires_at=float(claims["exp"]) if isinstance(claims.get("exp"), int | float) else None,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _short(value: object) -> str:
    """A claim or header value for a message: quoted, and never long."""
    # ASCII only: the message also goes into a WWW-Authenticate header.
    shown = ascii(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _malformed() -> AuthError:
    return AuthError(
        401, "malformed token: expected a signed JWT (header.payload.signature); log in again"
    )


def _jose_reason(exc: Exception) -> str:
    if isinstance(exc, JoseError):
        return exc.description or exc.error
    return type(exc).__name__

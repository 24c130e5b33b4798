"""Signed webhooks: the signature scheme, its verification and the webhook targets file.

Shared by the notification service, which signs, and by partner systems, which verify.

Signature scheme (after Stripe and Standard Webhooks). Every delivery carries three headers:

    Vs-Webhook-Id:        the delivery id; the same on every retry, so a receiver can
                          drop duplicates (letters, digits, '-' and '_' only)
    Vs-Webhook-Timestamp: when this attempt was signed, in unix seconds
    Vs-Webhook-Signature: v1=<hex HMAC-SHA256(secret, b"<id>.<timestamp>." + body)>

The body is signed byte for byte as sent; a receiver verifies the raw body before it
parses it. Binding the timestamp into the signature lets a receiver refuse replays of
old deliveries (default tolerance: 5 minutes either way). During a secret rotation the
signature header may hold several space-separated `v1=` values, one per valid secret;
one match is enough. Values with another version prefix are ignored, so a later scheme
can be added alongside.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ID_HEADER = "Vs-Webhook-Id"
TIMESTAMP_HEADER = "Vs-Webhook-Timestamp"
SIGNATURE_HEADER = "Vs-Webhook-Signature"
SCHEME = "v1"
MIN_SECRET_BYTES = 32

# The signed payload is "<id>.<timestamp>.<body>": an id without dots and a timestamp of
# digits only keep that split unambiguous, so no header can be moved into the body.
_DELIVERY_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


class SignatureInvalid(ValueError):
    """A webhook delivery whose signature cannot be trusted; the message says why."""


def _signature(secret: bytes, delivery_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    return hmac.new(secret, signed, hashlib.sha256).hexdigest()


def sign(secret: bytes, delivery_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers that let a receiver holding `secret` verify this delivery of `body`."""
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise ValueError("a delivery id has 1-128 letters, digits, '-' or '_'")
    if timestamp < 0:
        raise ValueError("a webhook timestamp is unix seconds, not negative")
    return {
        ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: f"{SCHEME}={_signature(secret, delivery_id, timestamp, body)}",
    }


def verify(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance_seconds: int = 300,
) -> None:
    """Raise SignatureInvalid unless `body` was signed with `secret` within the tolerance."""
    lowered = {name.lower(): value for name, value in headers.items()}
    missing = [
        name
        for name in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
        if not lowered.get(name.lower())
    ]
    if missing:
        raise SignatureInvalid(f"missing header {', '.join(missing)}")
    delivery_id = lowered[ID_HEADER.lower()]
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise SignatureInvalid(f"{ID_HEADER} is malformed")
    raw_timestamp = lowered[TIMESTAMP_HEADER.lower()]
    if not _TIMESTAMP.fullmatch(raw_timestamp):
        raise SignatureInvalid(f"{TIMESTAMP_HEADER} is not unix seconds")
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if timestamp < current - tolerance_seconds:
        raise SignatureInvalid(
            f"timestamp too old: signed {current - timestamp:.0f}s ago, "
            f"tolerance is {tolerance_seconds}s"
        )
    if timestamp > current + tolerance_seconds:
        raise SignatureInvalid(
            f"timestamp in the future: {timestamp - current:.0f}s ahead, "
            f"tolerance is {tolerance_seconds}s; check the clocks"
        )
    prefix = f"{SCHEME}="
    candidates = [
        part[len(prefix) :]
        for part in lowered[SIGNATURE_HEADER.lower()].split()
        if part.startswith(prefix)
    ]
    if not candidates:
        raise SignatureInvalid(f"{SIGNATURE_HEADER} has no {SCHEME}= signature")
    expected = _signature(secret, delivery_id, timestamp, body).encode()
    if not any(hmac.compare_digest(expected, candidate.encode()) for candidate in candidates):
        raise SignatureInvalid("signature mismatch: wrong secret or altered body")


@dataclass(frozen=True)
class WebhookTarget:
    """A partner system that receives the alerts of its organisations' workers."""

    name: str
    url: str
    secret: bytes
    organisations: frozenset[str]

    def __repr__(self) -> str:
        # The secret must never reach a log line or a traceback.
        return (
            f"WebhookTarget(name={self.name!r}, url={self.url!r}, "
            f"organisations={sorted(self.organisations)!r})"
        )


class WebhookConfigError(ValueError):
    """The webhooks file is wrong; the message names the file, the entry and the fix."""


_ENTRY_KEYS = ("name", "url", "secret_hex", "organisations")
_HOW_TO_MAKE_ONE = "make one with: python -c 'import secrets; print(secrets.token_hex(32))'"


def load_webhooks(path: Path) -> list[WebhookTarget]:
    """The webhook targets of a YAML file:

    version: 1
    webhooks:
      - {name: ..., url: https://..., secret_hex: "...", organisations: [...]}
    """
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise WebhookConfigError(
            f"{path}: cannot read the webhooks file ({exc.strerror}); "
            "fix the path in VS_WEBHOOKS_FILE"
        ) from None
    except yaml.YAMLError as exc:
        raise WebhookConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise WebhookConfigError(f"{path}: expected a mapping with 'version: 1' and 'webhooks'")
    unknown = sorted(set(map(str, document)) - {"version", "webhooks"})
    if unknown:
        raise WebhookConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)}; only 'version' and 'webhooks' exist"
        )
    if document.get("version") != 1:
        raise WebhookConfigError(
            f"{path}: version is {document.get('version')!r}; this service reads 'version: 1'"
        )
    entries = document.get("webhooks")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise WebhookConfigError(f"{path}: 'webhooks' must be a list of webhook entries")
    targets: list[WebhookTarget] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        target = _target(path, number, entry)
        if target.name in seen:
            raise WebhookConfigError(
                f"{path}: webhook #{number} '{target.name}': the name is used twice; "
                "give each webhook its own name"
            )
        seen.add(target.name)
        targets.append(target)
    return targets


def _target(path: Path, number: int, entry: Any) -> WebhookTarget:
    where = f"{path}: webhook #{number}"
    if not isinstance(entry, dict):
        raise WebhookConfigError(f"{where}: expected a mapping with {', '.join(_ENTRY_KEYS)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise WebhookConfigError(f"{where}: 'name' is missing; give the webhook a name")
    where = f"{where} '{name}'"
    unknown = sorted(set(map(str, entry)) - set(_ENTRY_KEYS))
    if unknown:
        raise WebhookConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed are {', '.join(_ENTRY_KEYS)}"
        )
    url = entry.get("url")
    if not isinstance(url, str):
        raise WebhookConfigError(f"{where}: 'url' is missing; set the receiver's http(s) URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookConfigError(
            f"{where}: url {url!r} is not an http:// or https:// URL with a host; "
            "only http and https are allowed"
        )
    secret_hex = entry.get("secret_hex")
    if not isinstance(secret_hex, str):
        raise WebhookConfigError(
            f"{where}: 'secret_hex' must be a quoted hexadecimal string; {_HOW_TO_MAKE_ONE}"
        )
    try:
        secret = bytes.fromhex(secret_hex)
    except ValueError:
        raise WebhookConfigError(
            f"{where}: 'secret_hex' is not hexadecimal; {_HOW_TO_MAKE_ONE}"
        ) from None
    if len(secret) < MIN_SECRET_BYTES:
        raise WebhookConfigError(
            f"{where}: the secret is {len(secret)} bytes, shorter than the "
            f"{MIN_SECRET_BYTES} required; {_HOW_TO_MAKE_ONE}"
        )
    organisations = entry.get("organisations")
    if (
        not isinstance(organisations, list)
        or not organisations
        or not all(isinstance(o, str) and o.strip() for o in organisations)
    ):
        raise WebhookConfigError(
            f"{where}: 'organisations' must be a non-empty list of organisation ids "
            "whose workers' alerts this webhook receives"
        )
    return WebhookTarget(name=name, url=url, secret=secret, organisations=frozenset(organisations))

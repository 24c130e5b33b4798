"""Signed webhooks by the Standard Webhooks specification (standardwebhooks.com): the
signing, its verification and the webhook targets file.

Shared by the notification service, which signs, and by partner systems, which verify,
with this module or with the specification's library in any language. Every delivery
carries three headers:

    webhook-id:        the delivery id; the same on every retry, so a receiver can drop
                       duplicates (letters, digits, '-' and '_' only)
    webhook-timestamp: when this attempt was signed, in unix seconds
    webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>

The key is the secret's bytes; a secret is written `whsec_<base64>`. The body is signed
byte for byte as sent; a receiver verifies the raw body before it parses it, and refuses
a timestamp more than five minutes off. During a secret rotation the target lists the
old secret under `previous_secrets`: every delivery is then signed with each (several
space-separated `v1,` signatures), and one match is enough for the receiver.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from standardwebhooks import Webhook, WebhookVerificationError

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every secret, not one
MIN_SECRET_BYTES = 32

# The signed content is "<id>.<timestamp>.<body>": an id without dots keeps that split
# unambiguous, so no header can be moved into the body.
_DELIVERY_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


class SignatureInvalid(ValueError):
    """A webhook delivery whose signature cannot be trusted; the message says why."""


def sign(secrets: Sequence[bytes], delivery_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers that let a receiver holding any of `secrets` verify this delivery."""
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise ValueError("a delivery id has 1-128 letters, digits, '-' or '_'")
    if timestamp < 0:
        raise ValueError("a webhook timestamp is unix seconds, not negative")
    if not secrets:
        raise ValueError("a webhook is signed with at least one secret")
    when = datetime.fromtimestamp(timestamp, UTC)
    text = body.decode()
    return {
        ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: " ".join(Webhook(key).sign(delivery_id, when, text) for key in secrets),
    }


def verify(secret: bytes, headers: Mapping[str, str], body: bytes) -> None:
    """Raise SignatureInvalid unless `body` was signed with `secret` within five minutes
    (the specification's library does the checking)."""
    try:
        Webhook(secret).verify(body, dict(headers), json_parse=False)
    except WebhookVerificationError as invalid:
        raise SignatureInvalid(str(invalid)) from None
    except (ValueError, binascii.Error):
        raise SignatureInvalid(f"{SIGNATURE_HEADER} is malformed") from None


def secret_text(key: bytes) -> str:
    """A secret as the specification writes it (for the webhooks file)."""
    return SECRET_PREFIX + base64.b64encode(key).decode()


@dataclass(frozen=True)
class WebhookTarget:
    """A partner system that receives the alerts of its organisations' workers."""

    name: str
    url: str
    secret: bytes
    organisations: frozenset[str]
    previous_secrets: tuple[bytes, ...] = ()  # still signed with during a rotation

    @property
    def signing_secrets(self) -> tuple[bytes, ...]:
        return (self.secret, *self.previous_secrets)

    def __repr__(self) -> str:
        # The secret must never reach a log line or a traceback.
        return (
            f"WebhookTarget(name={self.name!r}, url={self.url!r}, "
            f"organisations={sorted(self.organisations)!r})"
        )


class WebhookConfigError(ValueError):
    """The webhooks file is wrong; the message names the file, the entry and the fix."""


_ENTRY_KEYS = ("name", "url", "secret", "previous_secrets", "organisations")
_HOW_TO_MAKE_ONE = (
    "make one with: python -c 'import base64, secrets; "
    'print("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())\''
)


def load_webhooks(path: Path) -> list[WebhookTarget]:
    """The webhook targets of a YAML file:

    version: 1
    webhooks:
      - {name: ..., url: https://..., secret: whsec_..., organisations: [...]}
        (previous_secrets: [whsec_...] while a receiver moves to a new secret)
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
    if "secret_hex" in entry:
        raise WebhookConfigError(
            f"{where}: 'secret_hex' was the signature scheme before Standard Webhooks; write "
            "the same bytes as 'secret: whsec_<base64>' (python -c 'import base64, sys; "
            'print("whsec_" + base64.b64encode(bytes.fromhex(sys.argv[1])).decode())\' HEX)'
        )
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
    secret = _secret(where, "secret", entry.get("secret"))
    previous = entry.get("previous_secrets") or []
    if not isinstance(previous, list):
        raise WebhookConfigError(f"{where}: 'previous_secrets' must be a list of whsec_ secrets")
    older = tuple(_secret(where, "previous_secrets", value) for value in previous)
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
    return WebhookTarget(
        name=name,
        url=url,
        secret=secret,
        organisations=frozenset(organisations),
        previous_secrets=older,
    )


def _secret(where: str, key: str, value: Any) -> bytes:
    """A `whsec_<base64>` secret of at least MIN_SECRET_BYTES; the message never
    repeats the value."""
    if not isinstance(value, str) or not value.startswith(SECRET_PREFIX):
        raise WebhookConfigError(
            f"{where}: '{key}' must be a secret written whsec_<base64>; {_HOW_TO_MAKE_ONE}"
        )
    try:
        secret = base64.b64decode(value.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookConfigError(
            f"{where}: '{key}' is not base64 after whsec_; {_HOW_TO_MAKE_ONE}"
        ) from None
    if len(secret) < MIN_SECRET_BYTES:
        raise WebhookConfigError(
            f"{where}: the secret in '{key}' is {len(secret)} bytes, shorter than the "
            f"{MIN_SECRET_BYTES} required; {_HOW_TO_MAKE_ONE}"
        )
    return secret

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
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from standardwebhooks import Webhook, WebhookVerificationError

from shared.config import each_once, load_yaml_model

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


_HOW_TO_MAKE_ONE = (
    "make one with: python -c 'import base64, secrets; "
    'print("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())\''
)


def _secret(value: str) -> str:
    """A `whsec_<base64>` secret of at least MIN_SECRET_BYTES; the message never
    repeats the value."""
    if not value.startswith(SECRET_PREFIX):
        raise ValueError(f"must be a secret written whsec_<base64>; {_HOW_TO_MAKE_ONE}")
    try:
        secret = base64.b64decode(value.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"is not base64 after whsec_; {_HOW_TO_MAKE_ONE}") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the secret is {len(secret)} bytes, shorter than the {MIN_SECRET_BYTES} "
            f"required; {_HOW_TO_MAKE_ONE}"
        )
    return value


Secret = Annotated[str, AfterValidator(_secret)]


def _http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Not the URL itself: a receiver's URL may carry a token.
        raise ValueError("is not an http:// or https:// URL with a host")
    return url


class WebhookEntry(BaseModel):
    """One receiver: `previous_secrets` while it moves to a new secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
    url: Annotated[str, AfterValidator(_http_url)]
    secret: Secret
    previous_secrets: list[Secret] = Field(default_factory=list)
    organisations: list[Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]] = (
        Field(min_length=1)
    )

    @model_validator(mode="before")
    @classmethod
    def _not_the_old_scheme(cls, data: Any) -> Any:
        if isinstance(data, dict) and "secret_hex" in data:
            raise ValueError(
                "'secret_hex' was the signature scheme before Standard Webhooks; write the "
                "same bytes as 'secret: whsec_<base64>' (python -c 'import base64, sys; "
                'print("whsec_" + base64.b64encode(bytes.fromhex(sys.argv[1])).decode())\' HEX)'
            )
        return data

    def target(self) -> WebhookTarget:
        return WebhookTarget(
            name=self.name,
            url=self.url,
            secret=_bytes(self.secret),
            organisations=frozenset(self.organisations),
            previous_secrets=tuple(_bytes(s) for s in self.previous_secrets),
        )


def _bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


class WebhooksFile(BaseModel):
    """version: 1
    webhooks:
      - {name: ..., url: https://..., secret: whsec_..., organisations: [...]}
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    webhooks: list[WebhookEntry] | None = None

    @field_validator("webhooks")
    @classmethod
    def _names_once(cls, entries: list[WebhookEntry] | None) -> list[WebhookEntry] | None:
        each_once([e.name for e in entries or []], "the webhook name")
        return entries


def load_webhooks(path: Path) -> list[WebhookTarget]:
    """The webhook targets of a YAML file (WebhooksFile)."""
    listed = load_yaml_model(
        WebhooksFile, path, error=WebhookConfigError, what="the webhooks file (VS_WEBHOOKS_FILE)"
    )
    return [entry.target() for entry in listed.webhooks or []]

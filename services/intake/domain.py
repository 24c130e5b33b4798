"""Intake rules: who may send, and what of a signal travels on. Pure: no I/O."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from shared.config import VersionedKeys, each_once, parse_yaml_model
from shared.contracts import (
    Category,
    OrganisationCategory,
    SealedSignal,
    SignalAccepted,
    SignalRegistered,
    keyed_id,
    month_of,
)
from shared.envelope import EnvelopeError, IntakeKeyring, sealed_limit

# A partner clock may run a little ahead; more than this is a wrong timestamp.
CLOCK_SKEW = timedelta(minutes=5)


class PartnerRegistryError(ValueError):
    """The partners file is broken; the message names the entry, the field and the fix."""


class Rejection(Exception):
    """A well-formed signal that may not enter: `code` for machines, `reason` for people."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Partner:
    """An organisation with a covenant with the municipality."""

    partner_id: str
    organisation: str
    category: OrganisationCategory
    signing_keys: Mapping[str, bytes] = field(default_factory=dict)
    themes: frozenset[Category] | None = None  # None: every theme

    def may_signal(self, theme: Category) -> bool:
        return self.themes is None or theme in self.themes


class PartnerRegistry:
    def __init__(self, partners: Mapping[str, Partner]) -> None:
        self._partners = dict(partners)

    def __iter__(self) -> Iterator[Partner]:
        return iter(self._partners.values())

    def __len__(self) -> int:
        return len(self._partners)

    def get(self, partner_id: str) -> Partner | None:
        return self._partners.get(partner_id)

    @classmethod
    def parse(cls, text: str, *, source: str = "partners file") -> PartnerRegistry:
        listed = parse_yaml_model(PartnersFile, text, source=source, error=PartnerRegistryError)
        return cls(
            {
                p.id: Partner(
                    p.id,
                    p.organisation,
                    p.category,
                    signing_keys={k: bytes.fromhex(v) for k, v in p.signing_keys.items()},
                    themes=frozenset(p.themes) if p.themes is not None else None,
                )
                for p in listed.partners
            }
        )


class PartnerEntry(BaseModel):
    """One partner of the partners file (config/partners.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, BeforeValidator(str)]
    organisation: Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
    category: OrganisationCategory
    signing_keys: dict[Annotated[str, BeforeValidator(str)], str] = Field(default_factory=dict)
    themes: list[Category] | None = None  # None: every theme
    # Read by `secrets init` for the pseudonymiser's credentials, not by intake.
    daily_budget: int | None = None
    backfill: dict[str, Any] | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,62}", value):
            raise ValueError(
                f"{value!r} must be 2 to 63 lowercase letters, digits and dashes, "
                "not starting with a dash"
            )
        if value in RESERVED_IDS:
            raise ValueError(f"{value!r} is reserved (the topic signals.{value} is intake's)")
        return value

    @field_validator("signing_keys")
    @classmethod
    def _keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key_id, hex_key in value.items():
            try:
                Ed25519PublicKey.from_public_bytes(bytes.fromhex(str(hex_key)))
            except ValueError:
                raise ValueError(
                    f"signing key {key_id!r} is not a 32-byte Ed25519 public key in hex; "
                    "the partner's 'vroegsignaal partner keygen' prints it"
                ) from None
        return value


class PartnersFile(BaseModel):
    """The partners with a covenant: `version: 1` and the `partners` list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    partners: list[PartnerEntry]

    @field_validator("partners")
    @classmethod
    def _each_once(cls, partners: list[PartnerEntry]) -> list[PartnerEntry]:
        each_once([p.id for p in partners], "partner id")
        return partners


RESERVED_IDS = frozenset({"accepted"})


def window_key_name(window: str) -> str:
    """The name of a trend window's key in the key store."""
    return f"trend-window:{window}"


def trend_window(day: date) -> str:
    """The ISO week a day falls in: the window of the wijk-trend counts."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def verify_signature(
    partner: Partner, key_id: str | None, signature: bytes | None, value: bytes
) -> None:
    """The partner signed exactly these bytes with one of its registered keys."""
    if key_id is None or signature is None:
        raise Rejection(
            "unsigned", "the message has no vs-key-id/vs-signature headers; sign every event"
        )
    key = partner.signing_keys.get(key_id)
    if key is None:
        raise Rejection(
            "unknown-signing-key",
            f"signing key {key_id!r} is not registered for partner {partner.partner_id!r}",
        )
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, value)
    except InvalidSignature:
        raise Rejection(
            "bad-signature", "the signature does not match the message; it was altered"
        ) from None


# An observation is sealed padded to this size: its size does not tell its theme or wijk.
OBSERVATION_SIZE = 256


@dataclass(frozen=True)
class Observation:
    """A child counted in a wijk x theme week, as intake holds it until the next count:
    sealed, so that nothing stored in the signal's own transaction tells its theme."""

    wijk: str
    theme: str
    window: str
    token: str

    @property
    def cell(self) -> tuple[str, str, str]:
        return (self.wijk, self.theme, self.window)

    def to_bytes(self) -> bytes:
        raw = json.dumps([self.wijk, self.theme, self.window, self.token]).encode()
        if len(raw) > OBSERVATION_SIZE:
            raise ValueError("an observation does not fit its fixed size")
        return raw.ljust(OBSERVATION_SIZE)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Observation:
        wijk, theme, window, token = json.loads(raw)
        return cls(str(wijk), str(theme), str(window), str(token))


@dataclass(frozen=True)
class Admission:
    """What of an admitted signal travels on: the matching-domain subject and the personal
    fields to seal under it. The theme does not travel with it: it only counts the child
    in the wijk x theme week (`cell`, `child_token`), which intake aggregates itself."""

    subject: str
    personal: SealedSignal
    partner: Partner
    signal: SignalRegistered

    @property
    def window(self) -> str:
        return trend_window(self.signal.registered_at.date())

    @property
    def cell(self) -> tuple[str, str, str]:
        """The wijk x theme week this signal counts in."""
        return (self.signal.wijk, self.signal.category.value, self.window)

    def child_token(self, window_key: bytes) -> str:
        """Tells this child apart from another within the window's cells, and only there:
        a keyed hash under the window's own key, destroyed when the window has closed."""
        return hmac.new(window_key, self.subject.encode(), hashlib.sha256).hexdigest()[:32]

    def observation(self, window_key: bytes) -> Observation:
        return Observation(*self.cell, self.child_token(window_key))

    def accepted(self, event_id: uuid.UUID, sealed: str, now: datetime) -> SignalAccepted:
        return SignalAccepted(
            event_id=event_id,
            signal_id=event_id,
            partner_id=self.partner.partner_id,
            subject=self.subject,
            organisation=self.partner.organisation,
            organisation_category=self.partner.category,
            registered_at=self.signal.registered_at,
            age_limit_month=self.signal.age_limit_month,
            sealed=sealed,
            accepted_at=now,
        )


def open_partner_message(
    partner: Partner,
    *,
    key_id: bytes | None,
    signature: bytes | None,
    sealed_to: bytes | None,
    value: bytes,
    keyring: IntakeKeyring,
    max_bytes: int,
) -> bytes:
    """What a partner sent, as the partner meant it: the signature checked over the exact
    bytes sent, the size bounded, then the seal opened (only intake can). Raises Rejection
    naming the problem; nothing here parses what the message holds."""
    try:
        raw_signature = base64.b64decode(signature, validate=True) if signature else None
        verify_signature(partner, key_id.decode() if key_id else None, raw_signature, value)
    except (binascii.Error, UnicodeDecodeError):
        raise Rejection("bad-signature", "vs-signature is not base64") from None
    if len(value) > sealed_limit(max_bytes):
        raise Rejection(
            "oversized",
            f"the message is {len(value)} bytes, the limit is {max_bytes} before sealing; "
            "send one event per message",
        )
    try:
        return keyring.open(sealed_to.decode("ascii", "replace") if sealed_to else None, value)
    except EnvelopeError as problem:
        raise Rejection(problem.code, problem.reason) from None


def check_own_topic(claimed_partner: str, topic_partner: str, *, withdrawal: bool) -> None:
    """A partner speaks only on its own topic: a data subject's request or a withdrawal
    naming another partner is refused, as a signal is (`screen`), so that no partner can
    withdraw, erase or read out another's registrations."""
    if claimed_partner != topic_partner:
        raise Rejection(
            "partner-mismatch",
            "a partner may withdraw only its own registrations"
            if withdrawal
            else "a partner passes on requests only on its topic",
        )


def screen(
    signal: SignalRegistered,
    *,
    topic_partner_id: str | None,
    registry: PartnerRegistry,
    now: datetime,
    max_age: timedelta,
    rekey: Callable[[str], str],
) -> Admission:
    """Admit `signal` (re-keyed, minimised, the theme split off), or raise Rejection."""
    partner = registry.get(signal.partner_id)
    if partner is None:
        raise Rejection(
            "unknown-partner",
            f"partner {signal.partner_id!r} has no covenant in the partners file; "
            "ask the municipality to register the organisation",
        )
    if topic_partner_id != signal.partner_id:
        raise Rejection(
            "partner-mismatch",
            f"a signal of partner {signal.partner_id!r} arrived on the topic of "
            f"{topic_partner_id!r}; each partner sends only on its own topic",
        )
    if signal.organisation != partner.organisation:
        raise Rejection(
            "organisation-mismatch",
            f"organisation does not match the covenant of partner {signal.partner_id!r}",
        )
    if not partner.may_signal(signal.category):
        raise Rejection(
            "theme-not-allowed",
            f"partner {signal.partner_id!r} may not signal this theme under its covenant",
        )
    if signal.sent_at < now - max_age:
        raise Rejection(
            "stale",
            f"the event was sent more than {max_age.days} days ago; resend from the source",
        )
    if signal.registered_at > now + CLOCK_SKEW:
        raise Rejection(
            "future-timestamp", "registered_at lies in the future; check the partner's clock"
        )
    if signal.age_limit_month <= month_of(signal.registered_at.date()):
        raise Rejection(
            "over-age",
            "the subject turned 23 in or before the month of registration; registrations "
            "end at the start of the month the youth turns 23",
        )
    return Admission(
        subject=rekey(signal.subject),
        personal=SealedSignal(
            worker=signal.worker,
            wijk=signal.wijk,
            parents=[rekey(p) for p in signal.parents],
            household=rekey(signal.household) if signal.household else None,
            reference=signal.reference,
            partner_registration=signal.event_id,
        ),
        partner=partner,
        signal=signal,
    )


class Rekeyer:
    """Re-keys partner pseudonyms into the matching domain: HMAC-SHA256 under the gateway's
    own secret, which neither the pseudonymiser nor matching holds (split trust).

    The ids intake gives what it passes on (registrations, withdrawals, observations) are
    keyed too, under a key derived from the gateway's (HKDF, its own label), so that no
    id downstream can be computed from a partner's event id, a pseudonym or a theme."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise PartnerRegistryError(f"gateway key {current!r} is not in the key file")
        if any(len(k) < 32 for k in keys.values()):
            raise PartnerRegistryError("gateway keys must be at least 32 bytes")
        self._key = keys[current]
        self._ids = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"vroegsignaal intake ids v1"
        ).derive(self._key)
        self.version = current

    def registration_id(self, partner_id: str, event_id: uuid.UUID) -> uuid.UUID:
        """The registration a partner's SignalRegistered becomes (and a withdrawal names)."""
        return keyed_id(self._ids, "registration", partner_id, str(event_id))

    def withdrawal_id(self, partner_id: str, event_id: uuid.UUID) -> uuid.UUID:
        return keyed_id(self._ids, "withdrawal", partner_id, str(event_id))

    @classmethod
    def parse(cls, text: str, *, source: str = "gateway keys") -> Rekeyer:
        ring = parse_yaml_model(VersionedKeys, text, source=source, error=PartnerRegistryError)
        return cls(ring.key_bytes(), ring.current)

    def __call__(self, partner_pseudonym: str) -> str:
        return hmac.new(self._key, bytes.fromhex(partner_pseudonym), hashlib.sha256).hexdigest()

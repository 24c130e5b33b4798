"""Pseudonymiser rules: key versions, partner credentials, batch and rate limits.

The VOPRF itself is the `voprf` package (RFC 9497, checked against the RFC's vectors
in the tests); this module decides which key evaluates what for whom.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from voprf import ristretto

from shared.config import VersionedKeys, parse_yaml_model

SUITE = "ristretto255-SHA512"
ELEMENT_BYTES = 32


class PseudonymiserConfigError(ValueError):
    """A key ring or credentials file is broken; the message says where and how to fix it."""


class EvaluationRefused(Exception):
    """A request the pseudonymiser will not evaluate; `status` is the HTTP status."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.status = status
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class OprfKey:
    version: str
    evaluator: Any = field(repr=False)
    public_key: bytes


class KeyRing:
    """The VOPRF keys by version. New keys are added; old ones evaluate until retired."""

    def __init__(self, keys: Sequence[OprfKey], current: str) -> None:
        self._keys = {k.version: k for k in keys}
        if current not in self._keys:
            raise PseudonymiserConfigError(f"current key {current!r} is not in the key ring")
        self.current = current

    @classmethod
    def from_seeds(cls, seeds: Mapping[str, bytes], current: str) -> KeyRing:
        keys = []
        for version, seed in seeds.items():
            if len(seed) != 32:
                raise PseudonymiserConfigError(f"key {version!r}: the seed must be 32 bytes")
            evaluator = ristretto.Evaluator.from_seed(seed, f"vroegsignaal {version}".encode())
            keys.append(OprfKey(version, evaluator, evaluator.public_key.serialize()))
        return cls(keys, current)

    @classmethod
    def parse(cls, text: str, *, source: str = "key ring") -> KeyRing:
        ring = parse_yaml_model(VersionedKeys, text, source=source, error=PseudonymiserConfigError)
        return cls.from_seeds(ring.key_bytes(), ring.current)

    def public_keys(self) -> dict[str, bytes]:
        return {v: k.public_key for v, k in self._keys.items()}

    def evaluate(self, version: str, blinded: Sequence[bytes], *, max_batch: int) -> bytes:
        """Evaluate a batch; return the serialized batch output (DLEQ proof + elements)."""
        key = self._keys.get(version)
        if key is None:
            raise EvaluationRefused(
                400,
                "unknown-key-version",
                f"key version {version!r} is unknown or retired; current is {self.current!r}",
            )
        if not blinded:
            raise EvaluationRefused(400, "empty-batch", "send at least one blinded element")
        if len(blinded) > max_batch:
            raise EvaluationRefused(
                413, "batch-too-large", f"{len(blinded)} elements; at most {max_batch} a batch"
            )
        try:
            inputs = [ristretto.BlindedInput.deserialize(b) for b in blinded]
        except ValueError:
            raise EvaluationRefused(
                400, "malformed-element", "a blinded element is not a ristretto255 point"
            ) from None
        return bytes(key.evaluator.evaluate_batch(inputs).serialize())


# A partner's elements a day unless the partners file says otherwise: a large partner's
# normal day (a few hundred registrations of up to six pseudonyms each) with room to
# spare, and about 1/50,000th of the valid BSN space.
DEFAULT_DAILY_BUDGET = 20_000
# An approved backfill (a partner's first export of its backlog) runs at most this long.
MAX_BACKFILL_DAYS = 31


@dataclass(frozen=True)
class Backfill:
    """An approved, time-boxed larger budget for a partner's backlog."""

    budget: int
    approved_on: date
    until: date


@dataclass(frozen=True)
class Budget:
    """How many blinded elements a partner may have evaluated per UTC day."""

    daily: int = DEFAULT_DAILY_BUDGET
    backfill: Backfill | None = None

    def on(self, day: date) -> int:
        if self.backfill is not None and self.backfill.approved_on <= day <= self.backfill.until:
            return max(self.daily, self.backfill.budget)
        return self.daily


class PartnerCredentials:
    """Partners authenticate with a bearer token; only its SHA-256 is configured here,
    with the partner's daily budget (and an approved backfill, if any)."""

    def __init__(
        self, token_hashes: Mapping[str, bytes], budgets: Mapping[str, Budget] | None = None
    ) -> None:
        self._hashes = dict(token_hashes)
        self._budgets = dict(budgets or {})

    @classmethod
    def parse(cls, text: str, *, source: str = "credentials") -> PartnerCredentials:
        listed = parse_yaml_model(
            CredentialsFile, text, source=source, error=PseudonymiserConfigError
        )
        entries = listed.partners
        return cls(
            {pid: bytes.fromhex(e.token_sha256) for pid, e in entries.items()},
            {pid: e.budget() for pid, e in entries.items()},
        )

    def authenticate(self, token: str) -> str | None:
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for partner_id, expected in self._hashes.items():
            if hmac.compare_digest(digest, expected):
                found = partner_id
        return found

    def budget(self, partner_id: str) -> Budget:
        return self._budgets.get(partner_id, Budget())


TokenHash = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-fA-F]{64}$"),
    Field(description="the 64-hex SHA-256 of the partner's token"),
]


class BackfillSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    budget: int = Field(ge=1)
    approved_on: date
    until: date

    @model_validator(mode="after")
    def _time_boxed(self) -> BackfillSpec:
        if not self.approved_on <= self.until or (self.until - self.approved_on).days > (
            MAX_BACKFILL_DAYS
        ):
            raise ValueError(
                f"a backfill raises the daily budget for at most {MAX_BACKFILL_DAYS} days "
                "after its approval (approved_on <= until <= approved_on + 31 days)"
            )
        return self


class Credential(BaseModel):
    """A partner's token hash, its daily budget and an approved backfill, if any."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_sha256: TokenHash
    daily_budget: int = Field(default=DEFAULT_DAILY_BUDGET, ge=1, strict=True)
    backfill: BackfillSpec | None = None

    @model_validator(mode="after")
    def _backfill_above_daily(self) -> Credential:
        if self.backfill is not None and self.backfill.budget < self.daily_budget:
            raise ValueError("a backfill's budget is at least the daily budget")
        return self

    def budget(self) -> Budget:
        b = self.backfill
        return Budget(self.daily_budget, Backfill(b.budget, b.approved_on, b.until) if b else None)


def _token_only(value: object) -> object:
    """An older file gives only the token hash: the partner has the default budget."""
    return {"token_sha256": value} if isinstance(value, str) else value


class CredentialsFile(BaseModel):
    """`partners: {<partner id>: {token_sha256: <64 hex>, daily_budget, backfill}}` (or
    only the token hash)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partners: dict[str, Annotated[Credential, BeforeValidator(_token_only)]]


class RateLimiter:
    """A token bucket per partner, counted in blinded elements."""

    def __init__(self, per_second: float, burst: float) -> None:
        self._rate = per_second
        self._burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, partner_id: str, cost: int, now: float) -> bool:
        level, last = self._buckets.get(partner_id, (self._burst, now))
        level = min(self._burst, level + (now - last) * self._rate)
        if cost > level:
            self._buckets[partner_id] = (level, now)
            return False
        self._buckets[partner_id] = (level - cost, now)
        return True

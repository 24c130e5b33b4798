"""Partner messages sealed to intake: on `signals.<partner>` only intake can read them.

A partner's topic would otherwise hold each child's partner pseudonym beside the theme,
the wijk, the month of birth and the worker, readable by anyone with topic access for the
topic's retention. So the partner producer seals every event with HPKE (RFC 9180: X25519,
HKDF-SHA256, AES-128-GCM; the `cryptography` package) to intake's public key, naming the
key in the `vs-sealed-to` header, and signs the sealed bytes exactly as sent. Plaintexts
are padded to one fixed size first, so a message's size tells neither its theme nor its
type. Intake holds the private keys by version: a new key is added, partners move to
it, the old one is removed once no message sealed to it is left on the topics.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from shared.config import VersionedKeys, load_yaml_model

SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM)
SEALED_TO_HEADER = "vs-sealed-to"
# Every plaintext is padded with spaces (JSON ignores them) to this one size, which any
# valid partner event fits (the largest, every field at its limit in four-byte UTF-8, is
# under 3 KiB): all of them, of any type and theme, are the same size on the topic. A
# longer plaintext (never a valid event) is padded to a multiple of PAD_BLOCK.
PAD_TO = 4096
PAD_BLOCK = 1024
# What sealing adds: the encapsulated key (32 bytes) and the AEAD tag (16).
OVERHEAD = 32 + 16


def sealed_limit(max_plaintext: int) -> int:
    """The largest sealed message a plaintext of at most `max_plaintext` bytes makes."""
    return max(PAD_TO, max_plaintext + PAD_BLOCK) + OVERHEAD


class EnvelopeError(ValueError):
    """A sealed message that cannot be opened, or an unusable key file."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def _info(key_id: str) -> bytes:
    return f"vroegsignaal partner to intake v1|{key_id}".encode()


def pad(plaintext: bytes) -> bytes:
    if len(plaintext) <= PAD_TO:
        return plaintext.ljust(PAD_TO)
    return plaintext + b" " * (-len(plaintext) % PAD_BLOCK)


def seal(public_key: X25519PublicKey, key_id: str, plaintext: bytes) -> bytes:
    """The bytes a partner sends: `plaintext` padded, sealed to intake's key `key_id`."""
    return SUITE.encrypt(pad(plaintext), public_key, info=_info(key_id))


def public_key_of(hex_key: str) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(bytes.fromhex(hex_key))


class IntakeKeyring:
    """Intake's private keys by version, and the one partners are told to seal to."""

    def __init__(self, keys: Mapping[str, X25519PrivateKey], current: str) -> None:
        if current not in keys:
            raise EnvelopeError("bad-keyring", f"intake key {current!r} is not in the key file")
        self._keys = dict(keys)
        self.current = current

    @classmethod
    def load(cls, path: Path) -> IntakeKeyring:
        try:
            ring = load_yaml_model(
                VersionedKeys, path, what="intake's private keys (VS_INTAKE_KEYS_FILE)"
            )
        except ValueError as exc:
            raise EnvelopeError(
                "bad-keyring", f"{exc}\n(intake's private keys: VS_INTAKE_KEYS_FILE)"
            ) from None
        keys = {v: X25519PrivateKey.from_private_bytes(k) for v, k in ring.key_bytes().items()}
        return cls(keys, ring.current)

    def public_keys(self) -> dict[str, str]:
        """Version -> public key (hex): what partners pin."""
        return {
            version: key.public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            .hex()
            for version, key in self._keys.items()
        }

    def open(self, key_id: str | None, sealed: bytes) -> bytes:
        """The padded plaintext of a partner's message, or EnvelopeError naming why not."""
        if key_id is None:
            raise EnvelopeError(
                "unsealed",
                f"the message is not sealed to intake (no {SEALED_TO_HEADER} header): the "
                "partner producer seals every event to intake's public key (intake_keys in "
                "the partner configuration)",
            )
        key = self._keys.get(key_id)
        if key is None:
            raise EnvelopeError(
                "unknown-intake-key",
                f"the message is sealed to intake key {key_id!r}, which intake does not hold; "
                f"seal to {self.current!r} (the partner configuration's intake_keys)",
            )
        try:
            return SUITE.decrypt(sealed, key, info=_info(key_id))
        except (InvalidTag, ValueError):
            raise EnvelopeError(
                "seal-broken",
                f"the message does not open with intake key {key_id!r}: it was altered or "
                "sealed to another key",
            ) from None


def new_keyring(version: str) -> dict[str, Any]:
    """A key file for intake with one new key."""
    key = X25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return {"current": version, "keys": {version: raw.hex()}}

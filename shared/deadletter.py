"""What a dead letter keeps of the message that failed, and the key that keeps it sealed.

A rejected partner message holds a theme, a wijk, a month of birth and a worker next to
a pseudonym; an internal one holds pseudonyms. So a dead letter never keeps the original
in clear: it keeps the reason, where the message came from, its size and a keyed digest
(to recognise the same message again; nobody can test a guessed message against it
without the key), and the original only sealed with HPKE (RFC 9180) to the dead-letter
key. Every service holds only the public half and the digest key; the private half stays
with the operator who hands a partner its rejected messages back
(`vroegsignaal deadletter open`), and the topic keeps them a short time only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets as token
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from pydantic import BaseModel, ConfigDict

from shared.config import Hex32, Name, NamedKey, load_yaml_model
from shared.contracts import DeadLetter
from shared.envelope import SUITE


class DeadLetterKeyError(ValueError):
    """The dead-letter key file is unusable; the message names the file and the fix."""


def _info(key_id: str, letter_id: str, source_topic: str, partner_id: str | None) -> bytes:
    # Binds the sealed original to its own dead letter and to where it says it came from:
    # moved to another letter, or relabelled as another partner's, it does not open.
    return f"vroegsignaal dead letter v1|{key_id}|{letter_id}|{source_topic}|{partner_id}".encode()


class DeadLetterKeyFile(BaseModel):
    """What a service holds: key_id, public_key (X25519) and digest_key, 64 hex each."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: Name
    public_key: Hex32
    digest_key: Hex32


@dataclass(frozen=True)
class DeadLetterKey:
    """What a service holds: the public half to seal to, and the digest key."""

    key_id: str
    public_key: X25519PublicKey
    digest_key: bytes

    @classmethod
    def load(cls, path: Path) -> DeadLetterKey:
        doc = load_yaml_model(
            DeadLetterKeyFile,
            path,
            error=DeadLetterKeyError,
            what="the dead-letter key file (VS_DEADLETTER_KEY_FILE)",
        )
        return cls(
            key_id=doc.key_id,
            public_key=X25519PublicKey.from_public_bytes(bytes.fromhex(doc.public_key)),
            digest_key=bytes.fromhex(doc.digest_key),
        )

    def digest(self, value: bytes) -> str:
        return hmac.new(self.digest_key, value, hashlib.sha256).hexdigest()

    def seal(
        self,
        letter_id: str,
        source_topic: str,
        partner_id: str | None,
        key: bytes | None,
        value: bytes,
    ) -> str:
        original = json.dumps(
            {
                "key": base64.b64encode(key).decode() if key else None,
                "value": base64.b64encode(value).decode(),
            }
        ).encode()
        info = _info(self.key_id, letter_id, source_topic, partner_id)
        sealed = SUITE.encrypt(original, self.public_key, info=info)
        return base64.b64encode(sealed).decode()


@dataclass(frozen=True)
class Original:
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class DeadLetterOpener:
    """The operator's half: opens the originals sealed to its key id."""

    key_id: str
    private_key: X25519PrivateKey

    @classmethod
    def load(cls, path: Path) -> DeadLetterOpener:
        doc = load_yaml_model(
            NamedKey, path, error=DeadLetterKeyError, what="the dead-letter private key file"
        )
        return cls(doc.key_id, X25519PrivateKey.from_private_bytes(bytes.fromhex(doc.private_key)))

    def open(self, letter: DeadLetter) -> Original | None:
        """The original of `letter`; None when none was kept or it is sealed to another key."""
        if letter.original_sealed is None or letter.sealed_to != self.key_id:
            return None
        try:
            plain = SUITE.decrypt(
                base64.b64decode(letter.original_sealed),
                self.private_key,
                info=_info(
                    self.key_id, str(letter.event_id), letter.source_topic, letter.partner_id
                ),
            )
        except (InvalidTag, ValueError) as exc:
            raise DeadLetterKeyError(
                f"dead letter {letter.event_id}: the sealed original does not open ({exc})"
            ) from None
        doc = json.loads(plain)
        return Original(
            key=base64.b64decode(doc["key"]) if doc["key"] else None,
            value=base64.b64decode(doc["value"]),
        )


def new_key_files(key_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """(what every service gets, what only the operator keeps) for a new key."""
    private = X25519PrivateKey.generate()
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    secret = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return (
        {"key_id": key_id, "public_key": public.hex(), "digest_key": token.token_hex(32)},
        {"key_id": key_id, "private_key": secret.hex()},
    )

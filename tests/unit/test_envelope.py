"""Partner messages sealed to intake (HPKE, RFC 9180): only intake's key opens them, the
size does not tell the theme, and every refusal names its reason."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from shared.contracts import Category, SignalWithdrawn, WithdrawalReason, WorkerContact
from shared.envelope import (
    OVERHEAD,
    PAD_BLOCK,
    PAD_TO,
    EnvelopeError,
    IntakeKeyring,
    public_key_of,
    seal,
    sealed_limit,
)
from tests.factories import pseudonym, signal

KEYRING = IntakeKeyring(
    {"i1": X25519PrivateKey.generate(), "i2": X25519PrivateKey.generate()}, "i2"
)
PUBLIC = {v: public_key_of(k) for v, k in KEYRING.public_keys().items()}


def test_intake_opens_what_a_partner_sealed_to_any_key_it_holds() -> None:
    plain = signal("school-de-regenboog", pseudonym()).to_bytes()
    for version in ("i1", "i2"):  # the old key still opens during a rotation
        opened = KEYRING.open(version, seal(PUBLIC[version], version, plain))
        assert opened.rstrip(b" ") == plain
        assert len(opened) == PAD_TO


def test_the_sealed_size_tells_neither_the_theme_nor_the_type() -> None:
    """One size for every event a partner sends: the smallest and the largest signal of
    any theme (every field at its limit, in four-byte characters), a withdrawal."""
    subject = pseudonym()
    widest = "\U0001f600"
    largest = signal("school-de-regenboog", subject, category=Category.HUISELIJK_GEWELD)
    largest = largest.model_copy(
        update={
            "parents": [pseudonym() for _ in range(4)],
            "household": pseudonym(),
            "worker": WorkerContact(
                worker_id=widest * 64,
                display_name=widest * 120,
                email="w" * 64 + "@" + "d" * 190 + ".example",
                phone="+31 6 1234 5678 901",
            ),
        }
    )
    events = [signal("school-de-regenboog", subject, category=c) for c in Category]
    events += [largest]
    withdrawal = SignalWithdrawn(
        partner_id="school-de-regenboog",
        withdraws=uuid.uuid4(),
        subject=subject,
        reason=WithdrawalReason.RESOLVED,
    )
    sizes = {len(seal(PUBLIC["i2"], "i2", e.to_bytes())) for e in [*events, withdrawal]}
    assert len(largest.to_bytes()) < PAD_TO
    assert sizes == {PAD_TO + OVERHEAD}
    assert sizes.pop() <= sealed_limit(PAD_BLOCK)


def test_nothing_of_the_signal_is_readable_in_the_sealed_bytes() -> None:
    sent = signal("school-de-regenboog", pseudonym(), category=Category.HUISELIJK_GEWELD)
    sealed = seal(PUBLIC["i2"], "i2", sent.to_bytes())
    for clear in (b"huiselijk_geweld", sent.wijk.encode(), sent.subject.encode(),
                  sent.worker.email.encode(), sent.age_limit_month.encode()):  # fmt: skip
        assert clear not in sealed


@pytest.mark.parametrize(
    ("key_id", "tamper", "code"),
    [
        (None, False, "unsealed"),
        ("i9", False, "unknown-intake-key"),
        ("i1", False, "seal-broken"),  # sealed to i2, named i1
        ("i2", True, "seal-broken"),  # altered on the way
    ],
)
def test_a_message_intake_cannot_open_is_refused_with_its_reason(
    key_id: str | None, tamper: bool, code: str
) -> None:
    sealed = bytearray(seal(PUBLIC["i2"], "i2", b'{"schema_version": 2}'))
    if tamper:
        sealed[-1] ^= 1
    with pytest.raises(EnvelopeError) as refused:
        KEYRING.open(key_id, bytes(sealed))
    assert refused.value.code == code


def test_a_broken_key_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "intake-keys.yaml"
    path.write_text("current: i1\nkeys: {i1: nothex}\n")
    with pytest.raises(EnvelopeError, match="VS_INTAKE_KEYS_FILE"):
        IntakeKeyring.load(path)

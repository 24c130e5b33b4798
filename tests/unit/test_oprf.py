"""The VOPRF against RFC 9497 appendix A.1.2 (ristretto255-SHA512, modeVOPRF), and the
pseudonymiser's key ring, credentials and limits built on it."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest
from voprf import ristretto

from services.pseudonymiser.domain import (
    DEFAULT_DAILY_BUDGET,
    EvaluationRefused,
    KeyRing,
    PartnerCredentials,
    PseudonymiserConfigError,
    RateLimiter,
)

SEED = bytes.fromhex("a3" * 32)
KEY_INFO = bytes.fromhex("74657374206b6579")  # "test key"
PK_SM = "c803e2cc6b05fc15064549b5920659ca4a77b2cca6f04f6b357009335476ad4e"
VECTORS = [  # (Input, BlindedElement, EvaluationElement, Output)
    (
        "00",
        "863f330cc1a1259ed5a5998a23acfd37fb4351a793a5b3c090b642ddc439b945",
        "aa8fa048764d5623868679402ff6108d2521884fa138cd7f9c7669a9a014267e",
        "b58cfbe118e0cb94d79b5fd6a6dafb98764dff49c14e1770b566e42402da1a7d"
        "a4d8527693914139caee5bd03903af43a491351d23b430948dd50cde10d32b3c",
    ),
    (
        "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        "cc0b2a350101881d8a4cba4c80241d74fb7dcbfde4a61fde2f91443c2bf9ef0c",
        "60a59a57208d48aca71e9e850d22674b611f752bed48b36f7a91b372bd7ad468",
        "8a9a2f3c7f085b65933594309041fc1898d42d0858e59f90814ae90571a6df60"
        "356f4610bf816f27afdd84f47719e480906d27ecd994985890e5f539e7ea74b6",
    ),
]
# A.1.2.3, batch of two: blinded and evaluated elements.
BATCH_BLINDED = [
    "863f330cc1a1259ed5a5998a23acfd37fb4351a793a5b3c090b642ddc439b945",
    "90a0145ea9da29254c3a56be4fe185465ebb3bf2a1801f7124bbbadac751e654",
]
BATCH_EVALUATED = [
    "aa8fa048764d5623868679402ff6108d2521884fa138cd7f9c7669a9a014267e",
    "cc5ac221950a49ceaa73c8db41b82c20372a4c8d63e5dded2db920b7eee36a2a",
]
PROOF_BYTES = 64


@pytest.fixture(scope="module")
def evaluator():  # type: ignore[no-untyped-def]
    return ristretto.Evaluator.from_seed(SEED, KEY_INFO)


def test_derive_key_pair_gives_the_rfc_public_key(evaluator) -> None:  # type: ignore[no-untyped-def]
    assert evaluator.public_key.serialize().hex() == PK_SM


@pytest.mark.parametrize(("inp", "blinded", "evaluated", "output"), VECTORS)
def test_blind_evaluate_and_output_match_the_rfc_vectors(  # type: ignore[no-untyped-def]
    evaluator, inp: str, blinded: str, evaluated: str, output: str
) -> None:
    result = evaluator.evaluate(ristretto.BlindedInput.deserialize(bytes.fromhex(blinded)))
    assert result.serialize()[PROOF_BYTES:].hex() == evaluated
    assert evaluator.evaluate_known_input(bytes.fromhex(inp)).hex() == output


def test_batch_evaluation_matches_the_rfc_batch_vector(evaluator) -> None:  # type: ignore[no-untyped-def]
    inputs = [ristretto.BlindedInput.deserialize(bytes.fromhex(b)) for b in BATCH_BLINDED]
    serialized = evaluator.evaluate_batch(inputs).serialize()
    elements = [serialized[PROOF_BYTES + 32 * i : PROOF_BYTES + 32 * (i + 1)] for i in range(2)]
    assert [e.hex() for e in elements] == BATCH_EVALUATED


def test_the_protocol_round_trip_yields_the_prf_output_and_checks_the_proof() -> None:
    ring = KeyRing.from_seeds({"k1": bytes(range(32)), "k2": bytes(range(1, 33))}, "k2")
    inputs = [b"bsn:999990019", b"bsn:999990020"]
    clients, blinded = zip(*(ristretto.Client.blind(i) for i in inputs), strict=True)
    evaluation = ring.evaluate("k2", [b.serialize() for b in blinded], max_batch=10)
    output = ristretto.VerifiableBatchOutput.deserialize(evaluation)
    pk = ristretto.PublicKey.deserialize(ring.public_keys()["k2"])
    outputs = ristretto.Client.finalize_batch(list(clients), output, pk)
    assert len(set(outputs)) == 2
    # Same input, fresh blinding: the same pseudonym.
    again_client, again_blinded = ristretto.Client.blind(inputs[0])
    again = ring.evaluate("k2", [again_blinded.serialize()], max_batch=10)
    assert (
        ristretto.Client.finalize_batch(
            [again_client], ristretto.VerifiableBatchOutput.deserialize(again), pk
        )[0]
        == outputs[0]
    )


def test_the_key_ring_refuses_what_it_must() -> None:
    ring = KeyRing.from_seeds({"k1": bytes(32)}, "k1")
    _, blinded = ristretto.Client.blind(b"x")
    with pytest.raises(EvaluationRefused) as refused:
        ring.evaluate("k0", [blinded.serialize()], max_batch=10)
    assert refused.value.code == "unknown-key-version"
    with pytest.raises(EvaluationRefused) as refused:
        ring.evaluate("k1", [blinded.serialize()] * 3, max_batch=2)
    assert (refused.value.code, refused.value.status) == ("batch-too-large", 413)
    with pytest.raises(EvaluationRefused) as refused:
        ring.evaluate("k1", [b"\xff" * 32], max_batch=2)
    assert refused.value.code == "malformed-element"


def test_a_broken_key_ring_file_is_named() -> None:
    with pytest.raises(PseudonymiserConfigError, match=r"key ring:2: keys.k1: must be 64 hex"):
        KeyRing.parse("current: k1\nkeys: {k1: zz}")
    with pytest.raises(PseudonymiserConfigError, match="'k2' is not in keys"):
        KeyRing.parse(f"current: k2\nkeys: {{k1: '{'00' * 32}'}}")


def test_partners_authenticate_by_token_hash_only() -> None:
    creds = PartnerCredentials.parse(
        f"partners: {{school: {hashlib.sha256(b'secret-1').hexdigest()}}}"
    )
    assert creds.authenticate("secret-1") == "school"
    assert creds.authenticate("secret-2") is None


def test_the_rate_limit_is_per_partner_and_refills() -> None:
    limiter = RateLimiter(per_second=10, burst=10)
    assert limiter.allow("a", 10, now=0.0)
    assert not limiter.allow("a", 1, now=0.0)
    assert limiter.allow("b", 5, now=0.0)
    assert limiter.allow("a", 5, now=0.5)


def test_each_partner_has_a_daily_budget_and_a_backfill_only_time_boxed() -> None:
    token = hashlib.sha256(b"secret-1").hexdigest()
    creds = PartnerCredentials.parse(
        "partners:\n"
        f"  school: {{token_sha256: {token}, daily_budget: 500}}\n"
        f"  gp: {{token_sha256: {token.replace('a', 'b')},\n"
        "       backfill: {budget: 900000, approved_on: 2026-12-01, until: 2026-12-14}}\n"
        f"  old-style: {token.replace('a', 'c')}\n"
    )
    assert creds.budget("school").on(date(2026, 12, 1)) == 500
    assert creds.budget("old-style").on(date(2026, 12, 1)) == DEFAULT_DAILY_BUDGET
    # The backfill's larger budget holds until its end, then the daily one again.
    assert creds.budget("gp").on(date(2026, 12, 14)) == 900000
    assert creds.budget("gp").on(date(2026, 12, 15)) == DEFAULT_DAILY_BUDGET
    assert creds.budget("gp").on(date(2026, 11, 30)) == DEFAULT_DAILY_BUDGET  # not yet
    for broken, says in (
        ("daily_budget: 0", "daily_budget: Input should be greater than or equal to 1"),
        ("backfill: {budget: 10}", "backfill.approved_on: Field required"),
        (
            "backfill: {budget: 900000, approved_on: 2026-12-01, until: 2027-03-01}",
            "at most 31 days",
        ),
    ):
        with pytest.raises(PseudonymiserConfigError, match=says):
            PartnerCredentials.parse(f"partners:\n  school: {{token_sha256: {token}, {broken}}}")

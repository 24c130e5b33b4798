"""The wire contracts: decoding rules, error messages, keys, and the checked-in schemas."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from shared.contracts import (
    CONTRACTS,
    SEALED_PAYLOADS,
    Contract,
    ContractError,
    CoordinationTransferred,
    MatchDissolved,
    MatchJoined,
    MatchKind,
    MatchLeft,
    MatchRaised,
    SignalAccepted,
    SignalRegistered,
    SubjectErased,
    Topics,
    decode,
    json_schemas,
    partition_key,
)
from tests.factories import pseudonym, signal

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def test_a_valid_signal_round_trips() -> None:
    original = signal("school-de-regenboog", pseudonym())
    assert decode(SignalRegistered, original.to_bytes(), max_bytes=65536) == original


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "empty"),
        (b"{not json", "malformed-json"),
        (b"[1, 2]", "malformed-json"),
        (b"\xff\xfe", "malformed-json"),
        (b'{"schema_version": 4}', "schema-version"),
        (b'{"partner_id": "x"}', "schema-version"),
        (b'{"schema_version": 2, "partner_id": "x"}', "invalid"),
    ],
)
def test_bad_bytes_are_refused_with_a_machine_readable_code(raw: bytes, code: str) -> None:
    with pytest.raises(ContractError) as refused:
        decode(SignalRegistered, raw, max_bytes=65536)
    assert refused.value.code == code


def test_a_version_1_signal_with_a_day_is_refused_with_the_upgrade_to_make() -> None:
    data = json.loads(signal("school-de-regenboog", pseudonym()).to_bytes())
    del data["age_limit_month"]
    data.update(schema_version=1, age_cutoff="2039-05-04")
    with pytest.raises(ContractError) as refused:
        decode(SignalRegistered, json.dumps(data).encode(), max_bytes=65536)
    assert refused.value.code == "schema-version"
    assert "upgrade the partner producer" in refused.value.reason
    assert "2039" not in refused.value.reason


def test_an_oversized_message_is_refused_before_parsing() -> None:
    raw = signal("school-de-regenboog", pseudonym()).to_bytes()
    with pytest.raises(ContractError) as refused:
        decode(SignalRegistered, raw, max_bytes=len(raw) - 1)
    assert refused.value.code == "oversized"
    assert f"limit is {len(raw) - 1}" in refused.value.reason


def test_the_reason_names_the_field_but_never_echoes_the_value() -> None:
    data = json.loads(signal("school-de-regenboog", pseudonym()).to_bytes())
    data["subject"] = "123456782"  # a BSN-shaped value where a pseudonym belongs
    with pytest.raises(ContractError) as refused:
        decode(SignalRegistered, json.dumps(data).encode(), max_bytes=65536)
    assert "subject" in refused.value.reason
    assert "123456782" not in str(refused.value)


def test_unknown_fields_are_refused() -> None:
    data = json.loads(signal("school-de-regenboog", pseudonym()).to_bytes())
    data["naam"] = "Jan"
    with pytest.raises(ContractError) as refused:
        decode(SignalRegistered, json.dumps(data).encode(), max_bytes=65536)
    assert "naam" in refused.value.reason
    # A key that is no field name (a number, a pseudonym) is not repeated.
    del data["naam"]
    data["123456782"] = "x"
    with pytest.raises(ContractError) as refused:
        decode(SignalRegistered, json.dumps(data).encode(), max_bytes=65536)
    assert "123456782" not in refused.value.reason
    assert "(an unknown field)" in refused.value.reason


def test_signals_are_keyed_by_subject_so_their_order_holds() -> None:
    subject = pseudonym()
    assert partition_key(signal("school-de-regenboog", subject)) == subject.encode()
    assert partition_key(signal("jgz-voorbeeldrade", subject)) == subject.encode()


def _every_contract(base: type[Contract] = Contract) -> list[type[Contract]]:
    found = []
    for sub in base.__subclasses__():
        found += [sub, *_every_contract(sub)]
    return found


def test_every_contract_names_the_field_that_keys_it_and_a_match_keeps_one_key() -> None:
    contracts = _every_contract()
    assert set(CONTRACTS) <= set(contracts)
    for contract in contracts:
        assert "partition_by" in vars(contract), f"{contract.__name__} names no partition key"
        assert contract.partition_by in contract.model_fields, contract.__name__
    # Everything that happens to a match travels under its key, in order: raised,
    # joined, left, transferred, dissolved (MatchLeft once went under a random key).
    lifecycle = (MatchRaised, MatchJoined, MatchLeft, CoordinationTransferred, MatchDissolved)
    assert {c.partition_by for c in lifecycle} == {"key"}
    key = pseudonym()
    left = MatchLeft(
        match_id=uuid.uuid4(),
        kind=MatchKind.PERSON,
        key=key,
        left=[uuid.uuid4()],
        remaining=[uuid.uuid4()],
        rule="registration ended (expired)",
        policy_version="t",
    )
    assert partition_key(left) == key.encode()


def test_topic_names_carry_the_prefix_and_partner_ids_round_trip() -> None:
    topics = Topics("acc.")
    assert topics.accepted == "acc.signals.accepted"
    assert topics.partner("jgz-voorbeeldrade") == "acc.signals.jgz-voorbeeldrade"
    assert topics.partner_id_of("acc.signals.jgz-voorbeeldrade") == "jgz-voorbeeldrade"
    assert topics.partner_id_of("acc.signals.accepted") is None
    assert topics.partner_id_of("signals.jgz-voorbeeldrade") is None


def test_accepted_signals_carry_no_category() -> None:
    assert "category" not in SignalAccepted.model_fields


def test_checked_in_schemas_match_the_code() -> None:
    """Fails when a contract changes without `make schemas` being run and committed."""
    expected = json_schemas()
    on_disk = {p.name: json.loads(p.read_text()) for p in SCHEMA_DIR.glob("*.json")}
    assert set(on_disk) == set(expected), "run 'make schemas' and commit schemas/"
    for name, schema in expected.items():
        assert on_disk[name] == schema, f"{name} is stale: run 'make schemas' and commit it"
    assert len(expected) == len(CONTRACTS) + len(SEALED_PAYLOADS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("registered_at", "2026-01-01T00:00:00"),  # no time zone: cannot be compared
        ("organisation", "Basisschool\u0000De Regenboog"),  # PostgreSQL refuses NUL
    ],
)
def test_values_that_would_fail_later_on_every_redelivery_are_refused_at_the_door(
    field: str, value: str
) -> None:
    data = json.loads(signal("school-de-regenboog", pseudonym()).to_bytes())
    data[field] = value
    with pytest.raises(ContractError) as refused:
        decode(SignalRegistered, json.dumps(data).encode(), max_bytes=65536)
    assert field in refused.value.reason


def test_a_version_1_erasure_in_flight_at_the_upgrade_is_read_as_one_partners_request() -> None:
    event_id = uuid.uuid4()
    old = json.dumps(
        {
            "schema_version": 1,
            "event_id": str(event_id),
            "subject": "a" * 64,
            "partner_id": "school-de-regenboog",
            "requested_at": "2026-11-30T10:00:00+00:00",
            "registrations": [],
        }
    ).encode()
    erased = decode(SubjectErased, old, max_bytes=10_000)
    assert (erased.request_id, erased.partner_id, erased.schema_version) == (
        event_id,
        "school-de-regenboog",
        2,
    )
    with pytest.raises(ContractError) as unknown:
        decode(
            SubjectErased,
            old.replace(b'"schema_version": 1', b'"schema_version": 3'),
            max_bytes=10_000,
        )
    assert unknown.value.code == "schema-version"

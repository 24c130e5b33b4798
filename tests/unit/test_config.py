"""The one way a configuration file is read (shared/config.py): every mistake with its
line and field, never with a value from the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.intake.domain import PartnerRegistry, PartnerRegistryError
from services.pseudonymiser.domain import PartnerCredentials, PseudonymiserConfigError
from shared.keystore import Kek, KeyStoreError

SECRET = "5e" * 32


def test_a_broken_line_is_located_and_never_quoted(tmp_path: Path) -> None:
    kek = tmp_path / "kek.yaml"
    kek.write_text(f"current: kek1\nkeys:\n  kek1: '{SECRET}\n")  # the quote never closes
    with pytest.raises(KeyStoreError) as broken:
        Kek.load(kek)
    assert str(broken.value).startswith(f"{kek}:3:")
    assert "not valid YAML" in str(broken.value)
    assert SECRET not in str(broken.value)


def test_a_wrong_key_names_its_field_and_line_not_its_value(tmp_path: Path) -> None:
    kek = tmp_path / "kek.yaml"
    kek.write_text(f"keys:\n  kek1: '{SECRET[:-2]}'\ncurrent: kek2\n")
    with pytest.raises(KeyStoreError) as broken:
        Kek.load(kek)
    message = str(broken.value)
    assert f"{kek}:2: keys.kek1: must be 64 hex characters" in message
    assert SECRET[:-2] not in message
    kek.write_text(f"keys:\n  kek1: '{SECRET}'\ncurrent: kek2\n")
    with pytest.raises(KeyStoreError, match=r"kek.yaml:3: current: current key 'kek2' is not"):
        Kek.load(kek)


def test_a_partner_listed_twice_is_named_at_the_list() -> None:
    text = (
        "partners:\n"
        "  - {id: a-b, organisation: X, category: jgz}\n"
        "  - {id: a-b, organisation: Y, category: jgz}\n"
    )
    with pytest.raises(PartnerRegistryError, match=r":1: partners: partner id 'a-b' appears"):
        PartnerRegistry.parse(text)
    # An id YAML reads as a number is still an id.
    assert len(PartnerRegistry.parse("partners: [{id: 1234, organisation: X, category: jgz}]"))


def test_a_credential_error_points_at_its_field() -> None:
    token = "ab" * 32
    with pytest.raises(PseudonymiserConfigError) as broken:
        PartnerCredentials.parse(
            f"partners:\n  school:\n    token_sha256: {token}\n    daily_budget: 0\n"
        )
    assert str(broken.value) == (
        "credentials:4: partners.school.daily_budget: Input should be greater than or equal to 1"
    )

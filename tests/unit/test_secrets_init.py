"""`vroegsignaal secrets init --partners`: the derived partner files follow the
municipality's own list, and no key is ever overwritten."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vroegsignaal.partner.config import PartnerConfig, PartnerConfigError

PARTNER = {"id": "ggd-west", "organisation": "GGD West", "category": "jgz"}
SECOND = {"id": "school-oost", "organisation": "School Oost", "category": "onderwijs"}


def init(directory: Path, partners: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vroegsignaal", "secrets", "init", str(directory),
         "--partners", str(partners)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_the_partner_files_follow_the_list_and_keys_stay(tmp_path: Path) -> None:
    listing = tmp_path / "our-partners.yaml"
    listing.write_text(yaml.safe_dump({"version": 1, "partners": [PARTNER]}))
    secrets = tmp_path / "secrets"
    assert init(secrets, listing).returncode == 0
    derived = yaml.safe_load((secrets / "partners.yaml").read_text())
    assert [p["id"] for p in derived["partners"]] == ["ggd-west"]
    first_key = (secrets / "partners" / "ggd-west.yaml").read_text()
    kek = (secrets / "kek.yaml").read_text()

    # A second partner joins: it gets keys; the first partner's and the KEK stay as they were.
    listing.write_text(yaml.safe_dump({"version": 1, "partners": [PARTNER, SECOND]}))
    assert init(secrets, listing).returncode == 0
    derived = yaml.safe_load((secrets / "partners.yaml").read_text())
    assert [p["id"] for p in derived["partners"]] == ["ggd-west", "school-oost"]
    credentials = yaml.safe_load((secrets / "pseudonymiser-credentials.yaml").read_text())
    assert set(credentials["partners"]) == {"ggd-west", "school-oost"}
    assert (secrets / "partners" / "ggd-west.yaml").read_text() == first_key
    assert (secrets / "kek.yaml").read_text() == kek


def test_a_missing_partner_list_is_one_clear_error(tmp_path: Path) -> None:
    done = init(tmp_path / "secrets", tmp_path / "nope.yaml")
    assert done.returncode == 1
    assert "no partner list at" in done.stderr and "Traceback" not in done.stderr


def test_a_partner_that_made_its_own_key_keeps_it_to_itself(tmp_path: Path) -> None:
    own = {**PARTNER, "signing_keys": {"ggd-west-1": "ab" * 32}}
    listing = tmp_path / "our-partners.yaml"
    listing.write_text(yaml.safe_dump({"version": 1, "partners": [own]}))
    secrets = tmp_path / "secrets"
    assert init(secrets, listing).returncode == 0
    derived = yaml.safe_load((secrets / "partners.yaml").read_text())
    assert derived["partners"][0]["signing_keys"] == {"ggd-west-1": "ab" * 32}
    handed_over = yaml.safe_load((secrets / "partners" / "ggd-west.yaml").read_text())
    assert "signing_key" not in handed_over  # the private half never was here
    credentials = yaml.safe_load((secrets / "pseudonymiser-credentials.yaml").read_text())
    assert set(credentials["partners"]) == {"ggd-west"}


def test_a_partner_file_from_before_keyed_ids_gets_an_id_key_and_keeps_its_keys(
    tmp_path: Path,
) -> None:
    listing = tmp_path / "our-partners.yaml"
    listing.write_text(yaml.safe_dump({"version": 1, "partners": [PARTNER]}))
    secrets = tmp_path / "secrets"
    assert init(secrets, listing).returncode == 0
    path = secrets / "partners" / "ggd-west.yaml"
    config = yaml.safe_load(path.read_text())
    assert len(bytes.fromhex(config["id_key"])) == 32
    del config["id_key"]
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(PartnerConfigError, match=r"id_key ontbreekt.*partner keygen"):
        PartnerConfig.load(path)

    assert init(secrets, listing).returncode == 0
    again = yaml.safe_load(path.read_text())
    assert len(bytes.fromhex(again["id_key"])) == 32
    assert {k: v for k, v in again.items() if k != "id_key"} == config
    PartnerConfig.load(path)

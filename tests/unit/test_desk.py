"""The registration desk's rules: what a body may hold (nothing that could be a BSN, and
no refusal repeats what was sent), how its records are sealed (one size, bound to their
id and partner), and its configuration's mistakes named with the fix."""

from __future__ import annotations

import json
import random
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shared.i18n import choose
from vroegsignaal.partner.bsn import synthetic_bsns
from vroegsignaal.partner.desk.app import (
    WEB,
    EvaluateRequest,
    RegistrationRequest,
    WithdrawRequest,
    content_security_policy,
    problems,
)
from vroegsignaal.partner.desk.config import DeskConfig, DeskConfigError
from vroegsignaal.partner.desk.store import PADDED, SealError, Sealing

BSN = synthetic_bsns(1, random.Random(7))[0]
# Whatever else, a body with one of these is refused.
BSNS = synthetic_bsns(50, random.Random(11))
GOOD: dict[str, Any] = {
    "submission": str(uuid.uuid4()),
    "key_version": "k1",
    "child": "ab" * 32,
    "parents": ["cd" * 32],
    "household": "ef" * 32,
    "age_limit_month": "2040-05",
    "category": "pesten",
    "wijk": "WK099901",
    "reference": "LLN-2026-017",
}


def test_a_registration_made_in_the_browser_is_taken() -> None:
    taken = RegistrationRequest.model_validate(GOOD)
    assert taken.child == "ab" * 32 and taken.reference == "LLN-2026-017"
    assert EvaluateRequest.model_validate({"key_version": "k1", "blinded": ["A" * 43 + "="]})


@pytest.mark.parametrize(
    "change",
    [
        {"child": BSN},
        {"parents": [BSN]},
        {"household": BSN},
        {"reference": BSN},
        {"reference": f"dossier {BSN[:3]}.{BSN[3:6]}-{BSN[6:]}"},
        {"reference": f"{int(BSN):,}".replace(",", "\u2009")},
        {"reference": f"{BSN[:3]}/{BSN[3:6]}/{BSN[6:]}"},
        {"reference": "".join(chr(0x660 + int(d)) for d in BSN)},  # Arabic-Indic digits
        {"reference": f"1{BSN}2"},
        {"reference": "geb. 12-05-2015"},
        {"reference": "geboren 3 mei 2015"},
        {"reference": "LLN 120515"},
        {"reference": f"dossier \u2776{BSN[1:]}"},  # a dingbat digit: no plain digit
        {"reference": "20150512"},
        {"wijk": BSN},
        {"category": BSN},
        {"age_limit_month": BSN},
        {"submission": BSN},
        {"bsn": BSN},
        {BSN: "1"},
        {"phone": f"+31 {BSN}"},
        {"date_of_birth": "2015-05-12"},
    ],
)
def test_a_registration_that_could_carry_a_bsn_or_a_birth_date_is_refused_without_repeating_it(
    change: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError) as refused:
        RegistrationRequest.model_validate({**GOOD, **change})
    said = problems(refused.value, RegistrationRequest)
    assert said
    for value in (BSN, BSN.lstrip("0"), "2015-05-12"):
        assert value not in said


@pytest.mark.parametrize(
    "body",
    [
        {"key_version": "k1", "blinded": [BSN]},
        {"key_version": "k1", "blinded": ["A" * 40 + BSN]},  # not base64 of 32 bytes
        {"key_version": "k1", "blinded": ["A" * 43 + "="] * 7},  # more than one form needs
        {"key_version": BSN, "blinded": ["A" * 43 + "="]},
        {"key_version": "k1", "blinded": ["A" * 43 + "="], "inputs": [BSN]},
    ],
)
def test_only_blinded_elements_of_one_form_are_passed_to_the_pseudonymiser(
    body: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError) as refused:
        EvaluateRequest.model_validate(body)
    assert BSN not in problems(refused.value, EvaluateRequest)


def test_a_withdrawal_is_resolved_or_unjustified_only() -> None:
    assert WithdrawRequest.model_validate({"reason": "unjustified"}).reason.value == "unjustified"
    with pytest.raises(ValidationError):
        WithdrawRequest.model_validate({"reason": BSN})


def test_a_sealed_record_has_one_size_and_opens_only_as_itself() -> None:
    sealing = Sealing("school-de-regenboog", bytes(range(32)))
    one, other = uuid.uuid4(), uuid.uuid4()
    worker = sealing.worker("school-de-regenboog-1")
    small = sealing.seal(one, worker, {"child": "ab" * 32})
    # The largest a registration gets: every field at its longest, in four-byte characters.
    wide = "\U0001f600"
    largest = {
        **GOOD,
        "parents": ["cd" * 32] * 4,
        "reference": wide * 64,
        "category": "jongerenproblematiek",
        "registered_at": "2026-12-03T06:29:15.123456+00:00",
        "worker": {
            "worker_id": wide * 64,
            "display_name": wide * 120,
            "email": "x" * 64 + "@" + "y" * 190 + ".example",
            "phone": "+31 (0)6 1234 5678",
        },
    }
    large = sealing.seal(other, worker, largest)
    # Neither the number of parents nor a reference's length shows in its size.
    assert len(small) == len(large) == 12 + PADDED + 16
    assert sealing.open(one, worker, small) == {"child": "ab" * 32}
    assert sealing.open(other, worker, large) == largest
    with pytest.raises(SealError):
        sealing.open(other, worker, small)  # moved to another record
    with pytest.raises(SealError):
        sealing.open(one, sealing.worker("school-de-regenboog-2"), small)  # to another worker
    with pytest.raises(SealError):
        Sealing("jgz-voorbeeldrade", bytes(range(32))).open(one, worker, small)  # partner
    with pytest.raises(SealError):
        Sealing("school-de-regenboog", bytes(32)).open(one, worker, small)  # another key
    # A worker is named by a keyed hash: not their id, and another per partner key.
    assert "school" not in worker and len(worker) == 32
    assert worker != Sealing("school-de-regenboog", bytes(32)).worker("school-de-regenboog-1")


def test_the_pages_import_map_is_the_one_script_the_policy_allows_inline() -> None:
    policy = content_security_policy("https://login.voorbeeldrade.example/realms/vs")
    assert "connect-src 'self' https://login.voorbeeldrade.example;" in policy
    assert "frame-ancestors 'none'" in policy and "form-action 'none'" in policy
    html = (WEB / "index.html").read_text()
    assert len(re.findall(r"<script(?![^>]*\bsrc=)", html)) == 1  # the import map only
    # Every form field stays in the page: none has a name a native submit would send.
    assert not re.search(r"<(input|select)[^>]*\bname=\"(?!birth\")", html)


def desk_file(tmp_path: Path, **changes: Any) -> Path:
    (tmp_path / "postcodes.csv").write_text("postcode,wijk\n9901,WK099901\n")
    config = {
        "partners": [{"config": "school.yaml", "postcode_lookup": True}],
        "wijken": [{"code": "WK099901", "name": "Centrum"}],
        "postcodes": "postcodes.csv",
        **changes,
    }
    path = tmp_path / "desk.yaml"
    path.write_text(json.dumps(config))
    return path


def test_the_desk_configuration_reads_its_neighbours(tmp_path: Path) -> None:
    config = DeskConfig.load(desk_file(tmp_path))
    assert config.partners[0].config == tmp_path / "school.yaml"
    assert config.postcode_areas() == {"9901": "WK099901"}


@pytest.mark.parametrize(
    ("changes", "postcodes", "said"),
    [
        ({"postcodes": None}, None, "postcode_lookup: true, but postcodes"),
        (
            {"wijken": [{"code": "WK099901", "name": "A"}, {"code": "WK099901", "name": "B"}]},
            None,
            "wijken lists a wijk code twice",
        ),
        ({}, "postcode,wijk\n99,WK099901\n", "line 2: postcode is not a postcode area"),
        ({}, "postcode,wijk\n9901,WK012345\n", "line 2: wijk WK012345 is not among wijken"),
        ({"wijken": []}, None, "wijken"),
    ],
)
def test_a_broken_desk_configuration_names_the_mistake(
    tmp_path: Path, changes: dict[str, Any], postcodes: str | None, said: str
) -> None:
    choose("en")  # the partner's messages are Dutch by default
    path = desk_file(tmp_path, **changes)
    if postcodes is not None:
        (tmp_path / "postcodes.csv").write_text(postcodes)
    with pytest.raises(DeskConfigError, match=re.escape(said)):
        DeskConfig.load(path).postcode_areas()


def test_no_bsn_passes_as_a_blinded_element_or_a_key_version() -> None:
    for bsn in BSNS:
        for body in (
            {"key_version": "k1", "blinded": [bsn]},
            {"key_version": bsn, "blinded": ["A" * 43 + "="]},
        ):
            with pytest.raises(ValidationError) as refused:
                EvaluateRequest.model_validate(body)
            assert bsn not in problems(refused.value, EvaluateRequest)

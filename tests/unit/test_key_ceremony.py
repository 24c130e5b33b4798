"""The key ceremony: `vroegsignaal secrets init --domain` makes one trust domain's keys
at a time, each in its own directory, hands over only public material, and refuses to
put the two halves of the split trust (or two domains, or two partners) in one place;
only the all-in-one local stack puts everything together, and says so."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from typer.testing import CliRunner

from vroegsignaal.cli import app
from vroegsignaal.provision.secrets import PARTNERS_TEMPLATE

SCHOOL, JGZ = "school-de-regenboog", "jgz-voorbeeldrade"
PRIVATE = {
    "pseudonymiser": "oprf-keyring.yaml",
    "gateway": "gateway-keys.yaml",
    "keystore": "kek.yaml",
    "audit": "audit-signing-key.yaml",
    "deadletter": "deadletter-private.yaml",
    "database": "database-roles.yaml",
}


def init(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["secrets", "init", *args])
    return result.exit_code, result.output


def secret_files(directory: Path) -> set[str]:
    return {p.name for p in directory.rglob("*") if p.is_file() and "public" not in p.parts}


def test_each_domain_makes_only_its_own_keys_and_hands_over_only_public_ones(
    tmp_path: Path,
) -> None:
    for domain, private in PRIVATE.items():
        status, out = init(str(tmp_path / domain), "--domain", domain)
        assert status == 0, out
        made = secret_files(tmp_path / domain)
        assert private in made
        assert not made & (set(PRIVATE.values()) - {private}), (domain, made)
    public = tmp_path / "pseudonymiser" / "public" / "pseudonymiser-public.yaml"
    intake = tmp_path / "gateway" / "public" / "intake-public.yaml"
    for handed in (public, intake):
        doc = yaml.safe_load(handed.read_text())
        assert set(doc) == {"current", "public_keys"}
    ring = yaml.safe_load((tmp_path / "pseudonymiser" / "oprf-keyring.yaml").read_text())
    assert ring["keys"]["k1"] not in public.read_text()  # the key itself stays

    # Each partner makes its credential at home with what the municipality hands out.
    exports = []
    for pid in (SCHOOL, JGZ):
        status, out = init(
            str(tmp_path / pid), "--domain", "partner", "--partner", pid,
            "--pseudonymiser-public", str(public), "--intake-public", str(intake),
        )  # fmt: skip
        assert status == 0, out
        config = yaml.safe_load((tmp_path / pid / "partners" / f"{pid}.yaml").read_text())
        assert (
            config["pseudonymiser"]["public_keys"]
            == yaml.safe_load(public.read_text())["public_keys"]
        )
        assert config["intake_keys"] == yaml.safe_load(intake.read_text())
        assert not secret_files(tmp_path / pid) & set(PRIVATE.values())
        export = tmp_path / pid / "public" / f"partner-{pid}.yaml"
        assert config["signing_key"] not in export.read_text()
        assert config["pseudonymiser"]["token"] not in export.read_text()
        exports.append((export, config))

    # The municipality assembles intake's partners file and the pseudonymiser's hashes;
    # a listed partner without its export is named.
    template = yaml.safe_load(PARTNERS_TEMPLATE.read_text())
    template["partners"] = [p for p in template["partners"] if p["id"] in (SCHOOL, JGZ)]
    listing = tmp_path / "partners-list.yaml"
    listing.write_text(yaml.safe_dump(template))
    assemble = ["secrets", "assemble", str(tmp_path / "assembled"), "--partners", str(listing)]
    result = CliRunner().invoke(app, [*assemble, str(exports[0][0])])
    assert result.exit_code == 1 and f"no public export of partner {JGZ!r}" in result.output
    result = CliRunner().invoke(app, [*assemble, *(str(e) for e, _ in exports)])
    assert result.exit_code == 0, result.output
    listed = yaml.safe_load((tmp_path / "assembled" / "partners.yaml").read_text())
    credentials = yaml.safe_load(
        (tmp_path / "assembled" / "pseudonymiser-credentials.yaml").read_text()
    )
    for _export, config in exports:
        pid = config["partner_id"]
        (entry,) = [p for p in listed["partners"] if p["id"] == pid]
        assert set(entry["signing_keys"]) == {config["signing_key_id"]}
        token = hashlib.sha256(config["pseudonymiser"]["token"].encode()).hexdigest()
        assert credentials["partners"][pid]["token_sha256"] == token


def test_the_split_trust_never_meets_in_one_directory(tmp_path: Path) -> None:
    one = tmp_path / "one"
    assert init(str(one), "--domain", "pseudonymiser")[0] == 0
    status, out = init(str(one), "--domain", "gateway")
    assert status == 1
    assert "must never be in one place" in out
    assert not (one / "gateway-keys.yaml").exists()
    # Nor any two domains, nor the same domain twice as two partners.
    status, out = init(str(one), "--domain", "keystore")
    assert status == 1 and "a directory of their own" in out
    assert init(str(one), "--domain", "pseudonymiser")[0] == 0  # again: nothing new
    public = one / "public" / "pseudonymiser-public.yaml"
    gateway = tmp_path / "gateway"
    assert init(str(gateway), "--domain", "gateway")[0] == 0
    intake = gateway / "public" / "intake-public.yaml"
    school = tmp_path / "school"
    partner = ["--pseudonymiser-public", str(public), "--intake-public", str(intake)]
    # Without what a partner needs nothing is made, and the directory stays free.
    status, out = init(str(school), "--domain", "partner", "--partner", SCHOOL)
    assert status == 1 and "--intake-public" in out
    assert not school.exists()
    assert init(str(school), "--domain", "partner", "--partner", SCHOOL, *partner)[0] == 0
    status, out = init(str(school), "--domain", "partner", "--partner", JGZ, *partner)
    assert status == 1 and f"partner {SCHOOL}" in out


def test_only_the_local_stack_puts_everything_together_and_says_so(tmp_path: Path) -> None:
    local = tmp_path / "local"
    status, out = init(str(local))
    assert status == 0
    assert "LOCAL STACK ONLY" in out
    assert set(PRIVATE.values()) <= secret_files(local)
    # A production domain is never made into the local stack's directory.
    status, out = init(str(local), "--domain", "audit")
    assert status == 1
    assert "local-dev" in out


def test_a_broken_file_handed_over_is_refused_with_its_line_and_field(tmp_path: Path) -> None:
    """What the parties hand each other (the public keys, a partner's export, the partner
    list) is read through the configuration loader: a mistake is named by file, line and
    field, a duplicate export refused, and no value is repeated."""
    assert init(str(tmp_path / "p"), "--domain", "pseudonymiser")[0] == 0
    assert init(str(tmp_path / "g"), "--domain", "gateway")[0] == 0
    public = tmp_path / "p" / "public" / "pseudonymiser-public.yaml"
    intake = tmp_path / "g" / "public" / "intake-public.yaml"
    short = tmp_path / "short-public.yaml"
    short.write_text("current: k1\npublic_keys:\n  k1: abcdef0123\n")
    status, out = init(
        str(tmp_path / SCHOOL), "--domain", "partner", "--partner", SCHOOL,
        "--pseudonymiser-public", str(short), "--intake-public", str(intake),
    )  # fmt: skip
    assert status == 1
    assert f"{short}:3: public_keys.k1:" in out
    assert "abcdef0123" not in out
    status, out = init(
        str(tmp_path / SCHOOL), "--domain", "partner", "--partner", SCHOOL,
        "--pseudonymiser-public", str(public), "--intake-public", str(intake),
    )  # fmt: skip
    assert status == 0, out
    export = tmp_path / SCHOOL / "public" / f"partner-{SCHOOL}.yaml"

    template = yaml.safe_load(PARTNERS_TEMPLATE.read_text())
    template["partners"] = [p for p in template["partners"] if p["id"] == SCHOOL]
    listing = tmp_path / "partners-list.yaml"
    listing.write_text(yaml.safe_dump(template))
    assemble = ["secrets", "assemble", str(tmp_path / "out"), "--partners", str(listing)]
    twice = CliRunner().invoke(app, [*assemble, str(export), str(export)])
    assert twice.exit_code == 1
    assert f"a second export of partner {SCHOOL!r}" in twice.output
    tampered = tmp_path / "tampered.yaml"
    doc = yaml.safe_load(export.read_text())
    tampered.write_text(yaml.safe_dump({**doc, "token_sha256": "not-a-hash"}, sort_keys=False))
    refused = CliRunner().invoke(app, [*assemble, str(tampered)])
    assert refused.exit_code == 1
    assert f"{tampered}:" in refused.output and "token_sha256" in refused.output
    assert "not-a-hash" not in refused.output
    listing.write_text("version: 1\npartners:\n  - id: school-de-regenboog\n    category: x\n")
    refused = CliRunner().invoke(app, [*assemble, str(export)])
    assert refused.exit_code == 1
    assert f"{listing}:" in refused.output and "organisation" in refused.output
    assert not (tmp_path / "out" / "partners.yaml").exists()

"""The partner's side through its real entrypoint, `vroegsignaal partner send`, and the
pseudonymiser's refusals over HTTP."""

from __future__ import annotations

import base64
import random
from pathlib import Path

import httpx
import pytest
import yaml
from voprf import ristretto

from shared.contracts import Topics
from shared.settings import Settings
from tests.conftest import eventually, run_cli
from tests.e2e.test_pipeline import SCHOOL, export, get_json, row
from tests.kafka_tools import read_all
from vroegsignaal.partner.bsn import synthetic_bsns
from vroegsignaal.provision.secrets import Secrets

pytestmark = pytest.mark.e2e


async def test_partner_send_reports_rejects_and_never_shows_a_bsn(
    settings: Settings, secrets: Secrets, services: dict[str, str], tmp_path: Path
) -> None:
    child, sibling, mother = synthetic_bsns(3, random.Random())
    bad_bsn = "999999999"  # nine digits that fail the elfproef
    path = export(
        tmp_path / "export.csv",
        [
            row(child, mother, "juf-anouk", "pesten"),
            row(bad_bsn, mother, "juf-anouk", "pesten"),
            {**row(child, mother, "juf-anouk", "pesten"), "wijk": "Centrum"},
            # A 10 MB field: one reject line, and the rest of the file is still read.
            {**row(child, mother, "juf-anouk", "pesten"), "worker_name": "x" * 10_000_000},
            row(sibling, mother, "juf-anouk", "pesten"),
        ],
    )
    config = yaml.safe_load(secrets.partner_config(SCHOOL).read_text())
    config["pseudonymiser"]["url"] = settings.pseudonymiser_url
    config_path = tmp_path / "school.yaml"
    config_path.write_text(yaml.safe_dump(config))
    status, stdout, stderr = await run_cli(
        settings, "partner", "send", str(path), "--config", str(config_path)
    )
    assert status == 0, stderr
    # What the partner admin reads is Dutch by default.
    assert "verstuurd 2, afgewezen 3, dubbel 0, eerder verstuurd 0" in stdout
    assert "afgewezen regels met hun reden staan in" in stdout
    out, err = stdout.encode(), stderr.encode()
    rejects = (tmp_path / "export.csv.rejects.csv").read_text()
    assert "3,child_bsn is geen geldig BSN" in rejects
    assert "4,wijk is geen CBS-wijkcode" in rejects
    assert "5,een veld is groter dan 64 KiB" in rejects
    assert "Traceback" not in stderr

    records = await read_all(settings, Topics(settings.topic_prefix).partner(SCHOOL))
    wire = b"".join(
        (r.key or b"") + (r.value or b"") + b"".join(v for _, v in r.headers) for r in records
    )
    assert len(records) == 2
    for bsn in (child, sibling, mother, bad_bsn):
        assert bsn.encode() not in wire
        assert bsn.encode() not in out + err
        assert bsn not in rejects
    assert b"2016-05-04" not in wire  # the date of birth never leaves either

    async def registered() -> bool:
        summary = await get_json(f"{services['matching']}/matches/summary")
        return bool(summary["registrations"] == 2)

    await eventually(registered, timeout=60)

    # The same file again (after a crash, say): what Kafka acknowledged is not sent twice,
    # and the summary says it was sent before (in English, on request).
    status, stdout, stderr = await run_cli(
        settings, "partner", "--language", "en", "send", str(path), "--config", str(config_path)
    )
    assert status == 0, stderr
    assert "sent 0, rejected 3, duplicates 0, already sent 2" in stdout
    assert "3,child_bsn is not a valid BSN" in (tmp_path / "export.csv.rejects.csv").read_text()
    assert len(await read_all(settings, Topics(settings.topic_prefix).partner(SCHOOL))) == 2
    journal = (tmp_path / "export.csv.sent").read_text()
    assert len(journal.split()) == 2
    for bsn in (child, sibling, mother):
        assert bsn not in journal


async def test_the_pseudonymiser_refuses_what_it_must(
    settings: Settings, secrets: Secrets, services: dict[str, str]
) -> None:
    url = services["pseudonymiser"]
    token = yaml.safe_load(secrets.partner_config(SCHOOL).read_text())["pseudonymiser"]["token"]
    _, blinded = ristretto.Client.blind(b"vroegsignaal/v1/bsn:999990019")
    element = base64.b64encode(blinded.serialize()).decode()
    async with httpx.AsyncClient(timeout=10) as client:
        keys = (await client.get(f"{url}/v1/keys")).json()
        assert keys["suite"] == "ristretto255-SHA512"
        assert set(keys["keys"]) == {keys["current"]}

        def post(body: object, auth: str | None = f"Bearer {token}") -> object:
            headers = {"authorization": auth} if auth else {}
            return client.post(f"{url}/v1/evaluate", json=body, headers=headers)

        ok = await post({"key_version": keys["current"], "blinded": [element]})
        assert ok.status_code == 200  # type: ignore[attr-defined]
        valid = f"Bearer {token}"
        too_many = [element] * (settings.oprf_max_batch + 1)
        for body, auth, status, code in [
            ({"blinded": [element]}, None, 401, "unauthenticated"),
            ({"blinded": [element]}, "Bearer not-a-partner-token", 401, "unauthenticated"),
            ({"blinded": too_many}, valid, 413, "batch-too-large"),
            ({"key_version": "k0", "blinded": [element]}, valid, 400, "unknown-key-version"),
            ({"blinded": ["bm90IGEgcG9pbnQ="]}, valid, 400, "malformed-element"),
            ({"blinded": "nope"}, valid, 400, "malformed-request"),
        ]:
            response = await post(body, auth)
            assert response.status_code == status, body  # type: ignore[attr-defined]
            assert response.json()["error"] == code  # type: ignore[attr-defined]

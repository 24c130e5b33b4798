"""The partner producer at scale (`make bench`, its `producer` part): one partner's export
of `rows` rows sent with `vroegsignaal partner send`, as a partner admin runs it, to
Kafka and the pseudonymiser alone (no service reads the topic meanwhile), with an
approved backfill so the daily budget does not stop it. Reports its rows a second and
its peak resident memory, beside the VOPRF ceiling measured in the same run: how many
elements a second this machine blinds and finalizes (the producer's part) and evaluates
with the proof (the pseudonymiser's), and so how many rows of three elements (child,
parent, household) it could pseudonymise at most.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import yaml
from voprf import ristretto

from services.pseudonymiser.domain import KeyRing
from vroegsignaal.dev.chaos import partner_send, write_exports
from vroegsignaal.dev.harness import running
from vroegsignaal.partner.bsn import synthetic_bsns
from vroegsignaal.partner.pseudonymise import bsn_input
from vroegsignaal.provision.secrets import PARTNERS_TEMPLATE

MIB = 1024 * 1024
ELEMENTS_PER_ROW = 3  # the exports written here: a child, one parent, a household
SUMMARY = re.compile(r"sent (?P<sent>\d+), rejected (?P<rejected>\d+)")


def voprf_ceiling(elements: int = 9000, batch: int = 1000) -> dict[str, float]:
    """Elements a second: the client's blind and finalize, the server's evaluation with
    its batch proof; one core each."""
    ring = KeyRing.from_seeds({"bench": os.urandom(32)}, "bench")
    public = ristretto.PublicKey.deserialize(ring.public_keys()["bench"])
    synthetic = random.Random(7)  # noqa: S311 - synthetic test BSNs
    inputs = [bsn_input(b) for b in synthetic_bsns(elements, synthetic)]
    client = server = 0.0
    for at in range(0, elements, batch):
        started = time.perf_counter()
        clients, blinded = zip(
            *(ristretto.Client.blind(i) for i in inputs[at : at + batch]), strict=True
        )
        client += time.perf_counter() - started
        started = time.perf_counter()
        evaluation = ring.evaluate("bench", [b.serialize() for b in blinded], max_batch=batch)
        server += time.perf_counter() - started
        started = time.perf_counter()
        output = ristretto.VerifiableBatchOutput.deserialize(evaluation)
        ristretto.Client.finalize_batch(list(clients), output, public)
        client += time.perf_counter() - started
    return {
        "client_elements_per_second": elements / client,
        "server_elements_per_second": elements / server,
        "rows_per_second": min(elements / client, elements / server) / ELEMENTS_PER_ROW,
    }


def _template(directory: Path, partner_id: str, rows: int) -> Path:
    """The partner list with an approved backfill for `partner_id`, large enough."""
    listed: dict[str, Any] = yaml.safe_load(PARTNERS_TEMPLATE.read_text())
    today = datetime.now(UTC).date()
    for partner in listed["partners"]:
        if partner["id"] == partner_id:
            partner["backfill"] = {
                "budget": max(rows * ELEMENTS_PER_ROW * 2, partner.get("daily_budget", 0)),
                "approved_on": today.isoformat(),
                "until": (today + timedelta(days=1)).isoformat(),
            }
    path = directory / "partners-with-backfill.yaml"
    path.write_text(yaml.safe_dump(listed, sort_keys=False))
    return path


def producer(rows: int, data: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """Send `rows` rows of one partner; its rate and peak memory beside the ceiling."""
    partner_id = yaml.safe_load(PARTNERS_TEMPLATE.read_text())["partners"][0]["id"]
    template = _template(data, partner_id, rows)
    ceiling = voprf_ceiling()
    with running(data / "stack", services=("pseudonymiser",), partners_template=template) as stack:
        exports, _ = write_exports(data / "exports", rows, seed=3, only=partner_id)
        command, env = partner_send(stack, partner_id, exports[partner_id])
        out_path, err_path = data / "send.out", data / "send.err"
        # Well above the VOPRF ceiling's time: a send that takes longer is stuck.
        deadline = time.monotonic() + 600.0 + rows / 50
        started = time.monotonic()
        with out_path.open("w") as out, err_path.open("w") as err:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
            try:
                peak = _watch(process, deadline)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        seconds = time.monotonic() - started
        said, failed = out_path.read_text(), err_path.read_text()
        if process.returncode != 0:
            raise RuntimeError(f"partner send failed ({process.returncode}): {failed[-1500:]}")
        say(said.strip())
    counts = SUMMARY.search(said)
    if counts is None:
        raise RuntimeError(f"partner send did not say what it sent: {said[-500:]}")
    sent, rejected = int(counts["sent"]), int(counts["rejected"])
    if sent != rows or rejected:
        raise RuntimeError(
            f"partner send sent {sent} of {rows} rows and rejected {rejected}: the export this "
            "benchmark writes must be valid throughout (see its rejects file)"
        )
    return {
        "rows": sent,
        "seconds": seconds,
        "rows_per_second": sent / seconds,
        "peak_rss_mib": peak / MIB,
        "voprf": ceiling,
    }


def _watch(process: subprocess.Popen[bytes], deadline: float) -> int:
    """The peak resident memory of `process` until it ends; past `deadline`, an error."""
    peak = 0
    while process.poll() is None:
        if time.monotonic() > deadline:
            raise RuntimeError("partner send did not finish in time: it is stuck")
        with contextlib.suppress(psutil.NoSuchProcess):
            peak = max(peak, psutil.Process(process.pid).memory_info().rss)
        time.sleep(0.5)
    return peak

"""The VOPRF in a real browser (Debian's Chromium): the vendored @noble/curves behind
shared/static/voprf.js against RFC 9497's test vectors (A.1.2, ristretto255-SHA512,
modeVOPRF), and against the pseudonymiser's own key ring: a BSN blinded in the page,
evaluated by the server code, finalised in the page, gives the partner producer's
pseudonym, and no request the page sends carries the BSN."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from voprf import ristretto

from services.pseudonymiser.domain import KeyRing
from shared.webapp import STATIC
from tests.e2e.test_inbox_browser import chromium
from vroegsignaal.dev.stack.procs import free_port
from vroegsignaal.dev.vendor_js import MANIFEST, VENDOR
from vroegsignaal.partner.bsn import synthetic_bsns
from vroegsignaal.partner.pseudonymise import bsn_input, finalize, household_input

pytestmark = pytest.mark.e2e

PK_SM = "c803e2cc6b05fc15064549b5920659ca4a77b2cca6f04f6b357009335476ad4e"
BLIND_1 = "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706"
BLIND_2 = "222a5e897cf59db8145db8d16e597e8facb80ae7d4e26d9881aa6f61d645fc0e"
INPUT_1, INPUT_2 = "00", "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
BLINDED_1 = "863f330cc1a1259ed5a5998a23acfd37fb4351a793a5b3c090b642ddc439b945"
BLINDED_2_BATCH = "90a0145ea9da29254c3a56be4fe185465ebb3bf2a1801f7124bbbadac751e654"
EVALUATED_1 = "aa8fa048764d5623868679402ff6108d2521884fa138cd7f9c7669a9a014267e"
EVALUATED_2_BATCH = "cc5ac221950a49ceaa73c8db41b82c20372a4c8d63e5dded2db920b7eee36a2a"
PROOF_1 = (
    "ddef93772692e535d1a53903db24367355cc2cc78de93b3be5a8ffcc6985dd06"
    "6d4346421d17bf5117a2a1ff0fcb2a759f58a539dfbe857a40bce4cf49ec600d"
)
PROOF_BATCH = (
    "cc203910175d786927eeb44ea847328047892ddf8590e723c37205cb74600b0a"
    "5ab5337c8eb4ceae0494c2cf89529dcf94572ed267473d567aeed6ab873dee08"
)
OUTPUT_1 = (
    "b58cfbe118e0cb94d79b5fd6a6dafb98764dff49c14e1770b566e42402da1a7d"
    "a4d8527693914139caee5bd03903af43a491351d23b430948dd50cde10d32b3c"
)
OUTPUT_2 = (
    "8a9a2f3c7f085b65933594309041fc1898d42d0858e59f90814ae90571a6df60"
    "356f4610bf816f27afdd84f47719e480906d27ecd994985890e5f539e7ea74b6"
)
PAGE = """<!doctype html><html lang="nl"><head><meta charset="utf-8"><title>voprf</title>
<script type="importmap">{"imports": {"@noble/curves/": "/lib/vendor/noble-curves/",
 "@noble/hashes/": "/lib/vendor/noble-hashes/"}}</script></head><body></body></html>"""
# The RFC's blinds, given to the library as the random bytes it maps to a scalar
# (mapHashToField: little-endian, reduced mod n-1, plus 1). Test-only.
RFC_RUN = """async ([vectors]) => {
  const v = await import("/lib/voprf.js");
  const rngFor = (hex) => {
    let s = 0n;
    const b = v.fromHex(hex);
    for (let i = b.length - 1; i >= 0; i--) s = (s << 8n) | BigInt(b[i]);
    s -= 1n;
    const out = new Uint8Array(48);
    for (let i = 0; i < 48; i++) { out[i] = Number(s & 255n); s >>= 8n; }
    return () => out;
  };
  const pk = v.fromHex(vectors.pk);
  const [one] = v.blind([v.fromHex(vectors.input1)], rngFor(vectors.blind1));
  const [two] = v.blind([v.fromHex(vectors.input2)], rngFor(vectors.blind2));
  const single = v.finalize([one], v.fromHex(vectors.proof1 + vectors.evaluated1), pk);
  const batch = v.finalize([one, two],
    v.fromHex(vectors.proofBatch + vectors.evaluated1 + vectors.evaluated2), pk);
  let forged = null;
  try {
    v.finalize([one], v.fromHex("00".repeat(64) + vectors.evaluated1), pk);
  } catch (e) { forged = e.message; }
  return { blinded1: v.toHex(one.blinded), blinded2: v.toHex(two.blinded),
           single: single.map(v.toHex), batch: batch.map(v.toHex), forged };
}"""
ROUND_TRIP = """async ([inputs, pk]) => {
  const v = await import("/lib/voprf.js");
  const blinds = v.blind(inputs.map(([kind, value]) =>
    kind === "bsn" ? v.bsnInput(value) : v.householdInput(value)));
  const response = await fetch("/evaluate", { method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ blinded: blinds.map((b) => v.toBase64(b.blinded)) }) });
  const answer = await response.json();
  return v.finalize(blinds, v.fromBase64(answer.evaluation), v.fromHex(pk)).map(v.pseudonymOf);
}"""


@asynccontextmanager
async def serving(ring: KeyRing, bodies: list[bytes]) -> AsyncIterator[str]:
    """The static files as the pages serve them, and the pseudonymiser's evaluation."""

    async def evaluate(request: Request) -> JSONResponse:
        body = await request.body()
        bodies.append(body)
        blinded = [base64.b64decode(b) for b in json.loads(body)["blinded"]]
        evaluation = ring.evaluate("k1", blinded, max_batch=100)
        return JSONResponse({"evaluation": base64.b64encode(evaluation).decode()})

    app = Starlette(
        routes=[
            Route("/", lambda _request: HTMLResponse(PAGE)),
            Route("/evaluate", evaluate, methods=["POST"]),
            Mount("/lib", StaticFiles(directory=STATIC)),
        ]
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        await task


async def test_the_browser_voprf_meets_the_rfc_9497_vectors() -> None:
    vectors: dict[str, Any] = {
        "pk": PK_SM, "input1": INPUT_1, "input2": INPUT_2, "blind1": BLIND_1,
        "blind2": BLIND_2, "evaluated1": EVALUATED_1, "evaluated2": EVALUATED_2_BATCH,
        "proof1": PROOF_1, "proofBatch": PROOF_BATCH,
    }  # fmt: skip
    async with serving(KeyRing.from_seeds({"k1": bytes(32)}, "k1"), []) as url, chromium() as b:
        page = await b.new_page()
        await page.goto(url)
        result = await page.evaluate(RFC_RUN, [vectors])

    assert result["blinded1"] == BLINDED_1
    assert result["blinded2"] == BLINDED_2_BATCH
    assert result["single"] == [OUTPUT_1]
    assert result["batch"] == [OUTPUT_1, OUTPUT_2]
    assert "does not verify against the pinned public key" in result["forged"]


async def test_a_bsn_blinded_in_the_browser_gets_the_partner_producers_pseudonym() -> None:
    ring = KeyRing.from_seeds({"k1": bytes(range(32))}, "k1")
    public_key = ring.public_keys()["k1"]
    bsns = synthetic_bsns(3, random.Random())
    inputs = [["bsn", bsn] for bsn in bsns] + [["household", "HH-42-Voorbeeldrade"]]
    # The partner producer's way, in Python, for the same inputs.
    raw = [bsn_input(bsn) for bsn in bsns] + [household_input("HH-42-Voorbeeldrade")]
    clients, blinded = zip(*(ristretto.Client.blind(i) for i in raw), strict=True)
    evaluation = ring.evaluate("k1", [b.serialize() for b in blinded], max_batch=100)
    expected = [out[:32].hex() for out in finalize(list(clients), evaluation, public_key)]
    bodies: list[bytes] = []
    sent: list[str] = []

    async with serving(ring, bodies) as url, chromium() as browser:
        page = await browser.new_page()
        page.on("request", lambda request: sent.append(f"{request.url} {request.post_data}"))
        await page.goto(url)
        made = await page.evaluate(ROUND_TRIP, [inputs, public_key.hex()])
        # A wrong pinned key: the proof does not verify, and nothing is made.
        with pytest.raises(Exception, match="does not verify against the pinned public key"):
            await page.evaluate(ROUND_TRIP, [inputs, "e2" * 32])

    assert made == expected
    assert len(set(made)) == 4
    assert bodies and len(json.loads(bodies[0])["blinded"]) == 4
    for bsn in bsns:
        assert not any(bsn in line for line in sent), "a BSN left the page"
        assert not any(bsn.encode() in body for body in bodies)


def test_the_vendored_modules_are_the_pinned_packages_files() -> None:
    """What the pages load is byte for byte what `vendor_js` took from the registry
    tarballs whose integrity is pinned: a changed or added file fails here."""
    manifest = json.loads(MANIFEST.read_text())
    on_disk = {str(path.relative_to(VENDOR)) for path in VENDOR.rglob("*") if path.is_file()} - {
        MANIFEST.name
    }
    listed = set()
    for package, entry in manifest.items():
        directory = package.removeprefix("@").replace("/", "-")
        for name, digest in entry["files"].items():
            listed.add(f"{directory}/{name}")
            assert hashlib.sha256((VENDOR / directory / name).read_bytes()).hexdigest() == digest
    assert on_disk == listed

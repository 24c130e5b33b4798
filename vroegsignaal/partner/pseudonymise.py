"""The partner's side of the VOPRF (RFC 9497): blind, ask the pseudonymiser, verify the
proof against the pinned public key, unblind. The pseudonymiser sees only blinded points."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from typing import Any

import httpx
from voprf import ristretto

from shared.i18n import _
from vroegsignaal.partner.config import PseudonymiserAccess

# Domain separation: a BSN and a household id never yield the same pseudonym.
BSN_DOMAIN = b"vroegsignaal/v1/bsn:"
HOUSEHOLD_DOMAIN = b"vroegsignaal/v1/household:"


class PseudonymisationError(RuntimeError):
    """The pseudonymiser refused, was unreachable, or its proof did not verify."""


def _busy(response: httpx.Response) -> bool:
    """Whether an answer says "later", not "no": 502-504, and a 429 unless it is the
    pseudonymiser's refusal of a spent budget (a 429 from a proxy has no such body)."""
    if response.status_code in _BUSY_STATUS:
        return True
    if response.status_code != 429:
        return False
    try:
        body = response.json()
    except ValueError:
        return True
    return not (isinstance(body, dict) and body.get("error") in _REFUSED_CODES)


def _retry_after(response: httpx.Response | None) -> float | None:
    """The pause an answer asks for (Retry-After in seconds), if it asks for one."""
    if response is None:
        return None
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def bsn_input(bsn: str) -> bytes:
    return BSN_DOMAIN + bsn.encode()


def household_input(household_id: str) -> bytes:
    return HOUSEHOLD_DOMAIN + household_id.encode()


def finalize(
    clients: Sequence[ristretto.Client], evaluation: bytes, public_key: bytes
) -> list[bytes]:
    """Verify the batch DLEQ proof and unblind; raise PseudonymisationError if it fails."""
    try:
        output = ristretto.VerifiableBatchOutput.deserialize(evaluation)
        key = ristretto.PublicKey.deserialize(public_key)
        return list(ristretto.Client.finalize_batch(list(clients), output, key))
    except Exception as exc:
        raise PseudonymisationError(
            _("the pseudonymiser's answer is invalid: {problem}").format(problem=exc)
        ) from None
    except BaseException as exc:
        # voprf 0.2.0 panics (pyo3 PanicException, a BaseException) when a batch proof
        # fails to verify, where its single-element path raises ValueError.
        if type(exc).__name__ != "PanicException":
            raise
        raise PseudonymisationError(
            _(
                "the pseudonymiser's proof does not verify against the pinned public key: "
                "it did not use the key it claims. Stop and call the municipality."
            )
        ) from None


# Answers worth asking again: the pseudonymiser is busy (its rate per partner, a
# gateway between), not refusing. A spent daily budget is a 429 too, and final.
_BUSY_STATUS = {502, 503, 504}
_REFUSED_CODES = {"daily-budget-exhausted"}
# Failures of the connection worth another try; any other (a wrong URL scheme, a proxy
# misconfigured, a broken answer) fails the same way every time.
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def _problem(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


class Pseudonymiser:
    """The partner's client of the pseudonymiser. A request that times out, cannot
    connect or finds the pseudonymiser busy is sent again after a growing pause
    (`tries` in all); a refusal (budget, key, size) is not."""

    def __init__(
        self,
        access: PseudonymiserAccess,
        client: httpx.AsyncClient,
        *,
        tries: int = 6,
        pause: float = 0.5,
        cap: float = 15.0,
    ) -> None:
        self._tries = tries
        self._pause = pause
        self._cap = cap
        if access.key_version not in access.public_keys:
            raise PseudonymisationError(
                _("no public key pinned for version {version}").format(
                    version=repr(access.key_version)
                )
            )
        self._access = access
        self._client = client
        self._public_key = bytes.fromhex(access.public_keys[access.key_version])

    async def pseudonyms(self, inputs: Sequence[bytes]) -> list[str]:
        """One 256-bit pseudonym (hex) per input, in order; in requests of at most
        `max_batch` elements, the pseudonymiser's limit (VS_OPRF_MAX_BATCH)."""
        made: list[str] = []
        step = self._access.max_batch
        for start in range(0, len(inputs), step):
            made.extend(await self._evaluate(inputs[start : start + step]))
        return made

    async def _post(self, request: dict[str, Any]) -> httpx.Response:
        """The pseudonymiser's answer; asked again while it is busy or out of reach.
        A try that timed out may have been evaluated and counted against the daily
        budget all the same (docs/partner-admin.md)."""
        for attempt in range(1, self._tries + 1):
            response: httpx.Response | None = None
            try:
                response = await self._client.post(
                    f"{self._access.url.rstrip('/')}/v1/evaluate",
                    json=request,
                    headers={"authorization": f"Bearer {self._access.token}"},
                )
            except _TRANSIENT as exc:
                if attempt == self._tries:
                    raise PseudonymisationError(
                        _(
                            "cannot reach the pseudonymiser at {url} ({problem}, {tries} "
                            "tries): check the address and that it runs, then send again "
                            "(rows sent before are skipped)"
                        ).format(
                            url=self._access.url,
                            problem=_problem(exc),
                            tries=self._tries,
                        )
                    ) from None
            except httpx.HTTPError as exc:
                raise PseudonymisationError(
                    _(
                        "asking the pseudonymiser at {url} failed ({problem}): check the "
                        "address and any proxy in between, then send again"
                    ).format(url=self._access.url, problem=_problem(exc))
                ) from None
            else:
                if not _busy(response):
                    return response
                if attempt == self._tries:
                    raise PseudonymisationError(
                        _(
                            "the pseudonymiser stayed busy ({status}, {tries} tries): send "
                            "again later (rows sent before are skipped)"
                        ).format(status=response.status_code, tries=self._tries)
                    )
            pause = min(self._cap, self._pause * 2 ** (attempt - 1))
            await asyncio.sleep(min(self._cap, _retry_after(response) or pause))
        raise AssertionError("unreachable: the last try returns or raises")

    async def _evaluate(self, inputs: Sequence[bytes]) -> list[str]:
        if not inputs:
            return []
        clients, blinded = zip(*(ristretto.Client.blind(i) for i in inputs), strict=True)
        evaluation = await self.evaluate(
            [base64.b64encode(b.serialize()).decode() for b in blinded]
        )
        outputs = finalize(clients, base64.b64decode(evaluation), self._public_key)
        return [output[:32].hex() for output in outputs]

    @property
    def key_version(self) -> str:
        return self._access.key_version

    @property
    def public_key(self) -> bytes:
        """The pinned public key of the current version: every proof must verify against it."""
        return self._public_key

    async def evaluate(self, blinded: Sequence[str]) -> str:
        """The pseudonymiser's evaluation (base64: the batch proof, then one element per
        blinded one) of blinded elements (base64), asked with the partner's credential.
        The caller verifies the proof against `public_key` before it unblinds."""
        request = {"key_version": self._access.key_version, "blinded": list(blinded)}
        response = await self._post(request)
        if response.status_code != 200:
            try:
                detail = response.json().get("reason", response.text)
            except ValueError:
                detail = response.text
            raise PseudonymisationError(
                _("the pseudonymiser refused ({status}): {reason}").format(
                    status=response.status_code, reason=detail
                )
            )
        body = response.json()
        if body.get("key_version") != self._access.key_version:
            raise PseudonymisationError(_("the pseudonymiser answered with another key version"))
        return str(body["evaluation"])

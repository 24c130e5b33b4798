"""The partner's side of the VOPRF (RFC 9497): blind, ask the pseudonymiser, verify the
proof against the pinned public key, unblind. The pseudonymiser sees only blinded points."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import httpx
from voprf import ristretto

from shared.i18n import _
from vroegsignaal.partner.config import PseudonymiserAccess

# Domain separation: a BSN and a household id never yield the same pseudonym.
BSN_DOMAIN = b"vroegsignaal/v1/bsn:"
HOUSEHOLD_DOMAIN = b"vroegsignaal/v1/household:"


class PseudonymisationError(RuntimeError):
    """The pseudonymiser refused, was unreachable, or its proof did not verify."""


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


class Pseudonymiser:
    def __init__(self, access: PseudonymiserAccess, client: httpx.AsyncClient) -> None:
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

    async def _evaluate(self, inputs: Sequence[bytes]) -> list[str]:
        if not inputs:
            return []
        clients, blinded = zip(*(ristretto.Client.blind(i) for i in inputs), strict=True)
        try:
            response = await self._client.post(
                f"{self._access.url.rstrip('/')}/v1/evaluate",
                json={
                    "key_version": self._access.key_version,
                    "blinded": [base64.b64encode(b.serialize()).decode() for b in blinded],
                },
                headers={"authorization": f"Bearer {self._access.token}"},
            )
        except httpx.HTTPError as exc:
            raise PseudonymisationError(
                _("cannot reach the pseudonymiser at {url}: {problem}").format(
                    url=self._access.url, problem=exc
                )
            ) from None
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
        outputs = finalize(clients, base64.b64decode(body["evaluation"]), self._public_key)
        return [output[:32].hex() for output in outputs]

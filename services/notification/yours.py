"""What an organisation's own workers see of its registrations in a match: its own case
or dossier number (`reference`), the number its producer gave the registration (which
`vroegsignaal partner lookup` turns back into a row of its export) and when it was
registered. Sealed in the store under the registration's subject's data key, opened only
for a worker of that organisation."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import asyncpg

from shared.contracts import MatchContact
from shared.keystore import KeyShredded, KeyStore, SealBroken

# The registration id alone is the AAD of intake's seal of the whole signal: the context
# keeps a copy of that blob from ever opening as this view (and the reverse).
AAD_CONTEXT = b"notification/yours\x1f"
SHOWN = ("reference", "number", "registered_at")


class Sealer(Protocol):
    async def seal(self, subject: str, aad: bytes, plaintext: bytes, *, create: bool) -> str: ...


def _aad(registration_id: uuid.UUID) -> bytes:
    return AAD_CONTEXT + registration_id.bytes


def _plain(contact: MatchContact) -> dict[str, str] | None:
    shown = {
        "reference": contact.reference,
        "number": str(contact.partner_registration) if contact.partner_registration else None,
        "registered_at": contact.registered_at.isoformat() if contact.registered_at else None,
    }
    return {k: v for k, v in shown.items() if v is not None} or None


async def seal_yours(keystore: Sealer, contacts: Iterable[MatchContact]) -> dict[uuid.UUID, str]:
    """Per registration, its sealed view for its own organisation (none for a subject
    whose key is gone: erased meanwhile)."""
    sealed = {}
    for contact in contacts:
        plain = _plain(contact)
        if plain is None:
            continue
        try:
            sealed[contact.registration_id] = await keystore.seal(
                contact.subject,
                _aad(contact.registration_id),
                json.dumps(plain, sort_keys=True).encode(),
                create=False,
            )
        except KeyShredded:
            continue
    return sealed


async def open_one(
    keystore: KeyStore, subject: str, registration_id: uuid.UUID, sealed: str
) -> dict[str, Any] | None:
    """One registration's view for its organisation; None once its subject was erased
    (the key shredded) or if the seal is broken."""
    try:
        opened = json.loads(await keystore.open_sealed(subject, _aad(registration_id), sealed))
    except (KeyShredded, SealBroken, ValueError):
        return None
    if not isinstance(opened, dict):
        return None
    return {k: str(opened[k]) for k in SHOWN if opened.get(k) is not None}


async def open_yours(
    keystore: KeyStore, rows: Sequence[asyncpg.Record]
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """Per match, the worker's own registrations in it, opened (see open_one)."""
    found: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for r in rows:
        opened = await open_one(keystore, r["subject"], r["registration_id"], r["yours"])
        if opened is not None:
            found.setdefault(r["match_id"], []).append(opened)
    for registrations in found.values():
        registrations.sort(key=lambda y: y.get("registered_at", ""))
    return found


def attach(
    items: Iterable[dict[str, Any]], yours: Mapping[uuid.UUID, list[dict[str, Any]]]
) -> None:
    """Give each alert or match view (a dict with `match_id`) the worker's own
    registrations in its match, as `your_registrations`."""
    for item in items:
        match_id = item.get("match_id")
        item["your_registrations"] = yours.get(uuid.UUID(match_id), []) if match_id else []

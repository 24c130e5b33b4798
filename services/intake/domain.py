"""Intake rules: who may send, and what of a signal travels on. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import yaml

from shared.contracts import OrganisationCategory, SignalAccepted, SignalRegistered

# A partner clock may run a little ahead; more than this is a wrong timestamp.
CLOCK_SKEW = timedelta(minutes=5)


class PartnerRegistryError(ValueError):
    """The partners file is broken; the message names the entry, the field and the fix."""


class Rejection(Exception):
    """A well-formed signal that may not enter: `code` for machines, `reason` for people."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Partner:
    """An organisation with a covenant with the municipality."""

    partner_id: str
    organisation: str
    category: OrganisationCategory


class PartnerRegistry:
    def __init__(self, partners: Mapping[str, Partner]) -> None:
        self._partners = dict(partners)

    def __iter__(self) -> Iterator[Partner]:
        return iter(self._partners.values())

    def __len__(self) -> int:
        return len(self._partners)

    def get(self, partner_id: str) -> Partner | None:
        return self._partners.get(partner_id)

    @classmethod
    def parse(cls, text: str, *, source: str = "partners file") -> PartnerRegistry:
        try:
            doc: Any = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PartnerRegistryError(f"{source}: not valid YAML: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("partners"), list):
            raise PartnerRegistryError(
                f"{source}: expected a mapping with a 'partners' list, see config/partners.yaml"
            )
        allowed = ", ".join(c.value for c in OrganisationCategory)
        partners: dict[str, Partner] = {}
        for i, entry in enumerate(doc["partners"], start=1):
            where = f"{source}: partner #{i}"
            if not isinstance(entry, dict):
                raise PartnerRegistryError(
                    f"{where}: expected a mapping with id, organisation, category"
                )
            missing = [k for k in ("id", "organisation", "category") if not entry.get(k)]
            if missing:
                raise PartnerRegistryError(f"{where}: missing {', '.join(missing)}")
            pid = str(entry["id"])
            if not pid.replace("-", "").isalnum() or pid != pid.lower() or len(pid) < 2:
                raise PartnerRegistryError(
                    f"{where}: id {pid!r} must be lowercase letters, digits and dashes"
                )
            try:
                category = OrganisationCategory(entry["category"])
            except ValueError:
                raise PartnerRegistryError(
                    f"{where} ({pid}): category {entry['category']!r} is not one of: {allowed}"
                ) from None
            if pid in partners:
                raise PartnerRegistryError(f"{where}: id {pid!r} appears twice")
            partners[pid] = Partner(pid, str(entry["organisation"]), category)
        return cls(partners)


def screen(
    signal: SignalRegistered,
    *,
    topic_partner_id: str | None,
    registry: PartnerRegistry,
    now: datetime,
) -> SignalAccepted:
    """Admit `signal` as a SignalAccepted without its category, or raise Rejection."""
    partner = registry.get(signal.partner_id)
    if partner is None:
        raise Rejection(
            "unknown-partner",
            f"partner {signal.partner_id!r} has no covenant in the partners file; "
            "ask the municipality to register the organisation",
        )
    if topic_partner_id != signal.partner_id:
        raise Rejection(
            "partner-mismatch",
            f"a signal of partner {signal.partner_id!r} arrived on the topic of "
            f"{topic_partner_id!r}; each partner sends only on its own topic",
        )
    if signal.organisation != partner.organisation:
        raise Rejection(
            "organisation-mismatch",
            f"organisation does not match the covenant of partner {signal.partner_id!r}",
        )
    if signal.registered_at > now + CLOCK_SKEW:
        raise Rejection(
            "future-timestamp", "registered_at lies in the future; check the partner's clock"
        )
    if signal.age_cutoff <= signal.registered_at.date():
        raise Rejection(
            "over-age", "the subject was 23 or older at registration; only youths under 23"
        )
    return SignalAccepted(
        event_id=signal.event_id,
        signal_id=signal.event_id,
        partner_id=signal.partner_id,
        subject=signal.subject,
        organisation=partner.organisation,
        organisation_category=partner.category,
        worker=signal.worker,
        wijk=signal.wijk,
        registered_at=signal.registered_at,
        age_cutoff=signal.age_cutoff,
        accepted_at=now,
    )

"""The privacy policy: one versioned YAML file per municipality, validated at start.

Every mistake is reported with its line, its field and what is allowed, so the person
who edits the file can fix it without reading code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.config import load_yaml_model, parse_yaml_model
from shared.contracts import OrganisationCategory


class PolicyError(ValueError):
    """A broken policy file; the message lists every mistake with its line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FamilyPolicy(_Strict):
    enabled: bool = True
    links: frozenset[Literal["parent", "household"]] = frozenset({"parent", "household"})


class MatchingPolicy(_Strict):
    min_organisations: int = Field(default=2, ge=2, le=10)
    same_organisation_counts: bool = False
    family: FamilyPolicy = FamilyPolicy()


class RetentionPolicy(_Strict):
    active_days: int = Field(default=730, ge=1, le=3650)
    age_limit_years: int = Field(default=23, ge=1, le=27)
    archive_years: int = Field(default=5, ge=0, le=10)


class AggregatesPolicy(_Strict):
    k: int = Field(default=10, ge=2, le=1000)
    baseline_windows: int = Field(default=8, ge=2, le=104)
    alpha: float = Field(default=0.01, gt=0, lt=0.5)


class EscalationPolicy(_Strict):
    alert_unacknowledged_working_days: int = Field(default=5, ge=1, le=60)
    no_contact_working_days: int = Field(default=10, ge=1, le=120)


class InformingPolicy(_Strict):
    """Rule 10: under 12 the parents, 12-15 youth and parents, 16+ the youth."""

    parents_only_below: int = Field(default=12, ge=0, le=23)
    youth_only_from: int = Field(default=16, ge=0, le=23)

    @model_validator(mode="after")
    def _ordered(self) -> InformingPolicy:
        if self.youth_only_from < self.parents_only_below:
            raise ValueError("youth_only_from must not be below parents_only_below")
        return self


class DigestPolicy(_Strict):
    """E-mail tells a worker that their inbox changed, at most once per interval: one
    e-mail for many alerts, never one per alert."""

    interval_minutes: int = Field(default=60, ge=1, le=1440)
    # The first alert of a case new to the worker goes out sooner, after min_gap_minutes
    # since their last e-mail rather than the whole interval.
    new_case_immediately: bool = False
    min_gap_minutes: int = Field(default=5, ge=1, le=1440)
    # How long the record of a digest e-mail (when, to which address, its counts) stays.
    keep_days: int = Field(default=30, ge=1, le=365)

    @model_validator(mode="after")
    def _gap_within_interval(self) -> DigestPolicy:
        if self.min_gap_minutes > self.interval_minutes:
            raise ValueError("digest.min_gap_minutes must not exceed digest.interval_minutes")
        return self


class NotificationPolicy(_Strict):
    keep_closed_days: int = Field(default=365, ge=1, le=3650)
    digest: DigestPolicy = DigestPolicy()


class AuditPolicy(_Strict):
    retention_years: int = Field(default=5, ge=1, le=30)


class Policy(_Strict):
    version: str = Field(min_length=1, max_length=64)
    municipality: str = Field(min_length=1)
    authorised_categories: frozenset[OrganisationCategory]
    coordinating_categories: frozenset[OrganisationCategory]
    matching: MatchingPolicy = MatchingPolicy()
    retention: RetentionPolicy = RetentionPolicy()
    aggregates: AggregatesPolicy = AggregatesPolicy()
    escalation: EscalationPolicy = EscalationPolicy()
    informing: InformingPolicy = InformingPolicy()
    notification: NotificationPolicy = NotificationPolicy()
    audit: AuditPolicy = AuditPolicy()

    def authorises(self, category: OrganisationCategory) -> bool:
        """Rule 1: only organisations of an authorised category may register."""
        return category in self.authorised_categories

    @model_validator(mode="after")
    def _coordinators_are_authorised(self) -> Policy:
        stray = self.coordinating_categories - self.authorised_categories
        if stray:
            names = ", ".join(sorted(c.value for c in stray))
            raise ValueError(f"coordinating_categories lists unauthorised categories: {names}")
        return self

    @classmethod
    def parse(cls, text: str, *, source: str = "policy file") -> Policy:
        return parse_yaml_model(cls, text, source=source, error=PolicyError)

    def informing_addressee(self, age: int) -> str:
        """Rule 10: whom the registering worker informs, by the youth's age."""
        if age < self.informing.parents_only_below:
            return "parents"
        if age < self.informing.youth_only_from:
            return "youth and parents"
        return "youth"


def load_policy(path: Path) -> Policy:
    return load_yaml_model(Policy, path, error=PolicyError, what="the policy file (VS_POLICY_FILE)")

"""Intake rules: the partner registry and what may enter the matching domain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.intake.domain import PartnerRegistry, PartnerRegistryError, Rejection, screen
from shared.contracts import OrganisationCategory
from tests.factories import pseudonym, signal

REGISTRY = PartnerRegistry.parse(
    """
partners:
  - {id: school-de-regenboog, organisation: Basisschool De Regenboog, category: onderwijs}
  - {id: jgz-voorbeeldrade, organisation: JGZ Voorbeeldrade, category: jgz}
"""
)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_an_admitted_signal_loses_its_category_and_gains_the_organisation_category() -> None:
    sent = signal("jgz-voorbeeldrade", pseudonym(), registered_at=NOW)
    accepted = screen(sent, topic_partner_id="jgz-voorbeeldrade", registry=REGISTRY, now=NOW)
    assert accepted.signal_id == sent.event_id
    assert accepted.subject == sent.subject
    assert accepted.organisation_category is OrganisationCategory.JGZ
    assert "category" not in accepted.model_dump()


def test_a_partner_without_a_covenant_is_rejected() -> None:
    sent = signal("huisartsen-centrum", pseudonym(), registered_at=NOW)
    with pytest.raises(Rejection) as rejected:
        screen(sent, topic_partner_id="huisartsen-centrum", registry=REGISTRY, now=NOW)
    assert rejected.value.code == "unknown-partner"


def test_a_partner_may_not_send_on_another_partners_topic() -> None:
    sent = signal("school-de-regenboog", pseudonym(), registered_at=NOW)
    with pytest.raises(Rejection) as rejected:
        screen(sent, topic_partner_id="jgz-voorbeeldrade", registry=REGISTRY, now=NOW)
    assert rejected.value.code == "partner-mismatch"


def test_signals_from_the_future_are_rejected() -> None:
    sent = signal("school-de-regenboog", pseudonym(), registered_at=NOW + timedelta(hours=1))
    with pytest.raises(Rejection) as rejected:
        screen(sent, topic_partner_id="school-de-regenboog", registry=REGISTRY, now=NOW)
    assert rejected.value.code == "future-timestamp"


def test_a_subject_of_23_or_older_is_rejected() -> None:
    sent = signal("school-de-regenboog", pseudonym(), registered_at=NOW, age_cutoff=NOW.date())
    with pytest.raises(Rejection) as rejected:
        screen(sent, topic_partner_id="school-de-regenboog", registry=REGISTRY, now=NOW)
    assert rejected.value.code == "over-age"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("partners: nope", "'partners' list"),
        ("partners: [{id: a-b, organisation: X}]", "missing category"),
        ("partners: [{id: a-b, organisation: X, category: bakker}]", "is not one of"),
        ("partners: [{id: A_B, organisation: X, category: jgz}]", "lowercase"),
        (
            "partners: [{id: a-b, organisation: X, category: jgz},"
            " {id: a-b, organisation: Y, category: jgz}]",
            "appears twice",
        ),
        ("partners: [{id: a-b", "not valid YAML"),
    ],
)
def test_a_broken_partners_file_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(PartnerRegistryError, match=message):
        PartnerRegistry.parse(text)


def test_the_shipped_partners_file_is_valid() -> None:
    from shared.settings import Settings

    registry = PartnerRegistry.parse(Settings().partners_file.read_text())
    assert len(registry) >= 4

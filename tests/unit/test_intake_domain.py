"""Intake rules: the partner registry and what may enter the matching domain."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.intake.domain import (
    OBSERVATION_SIZE,
    Admission,
    Observation,
    PartnerRegistry,
    PartnerRegistryError,
    Rejection,
    Rekeyer,
    check_own_topic,
    trend_window,
    verify_signature,
)
from services.intake.domain import screen as screen_signal
from shared.contracts import (
    Category,
    OrganisationCategory,
    SignalAccepted,
    SignalRegistered,
    month_of,
    scoped_id,
)
from tests.factories import pseudonym, signal

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
REGISTRY = PartnerRegistry.parse(
    f"""
partners:
  - id: school-de-regenboog
    organisation: Basisschool De Regenboog
    category: onderwijs
    signing_keys: {{school-1: "{PUBLIC.hex()}"}}
    themes: [schoolverzuim, pesten]
  - {{id: jgz-voorbeeldrade, organisation: JGZ Voorbeeldrade, category: jgz}}
"""
)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REKEY = Rekeyer({"g1": b"k" * 32}, "g1")


SCREENED: dict[object, Admission] = {}


def screen(sent: SignalRegistered, **kwargs: object) -> SignalAccepted:
    """Screen, and build the SignalAccepted as the handler does (with a dummy seal)."""
    admission = screen_signal(
        sent,
        max_age=timedelta(days=14),
        rekey=REKEY,
        **kwargs,  # type: ignore[arg-type]
    )
    SCREENED[sent.event_id] = admission
    return admission.accepted(REKEY.registration_id(sent.partner_id, sent.event_id), "v1.AA", NOW)


def test_an_admitted_signal_loses_its_category_and_gains_the_organisation_category() -> None:
    sent = signal("jgz-voorbeeldrade", pseudonym(), registered_at=NOW)
    accepted = screen(sent, topic_partner_id="jgz-voorbeeldrade", registry=REGISTRY, now=NOW)
    assert accepted.subject == REKEY(sent.subject)
    assert accepted.organisation_category is OrganisationCategory.JGZ
    assert "category" not in accepted.model_dump()
    admission = SCREENED[sent.event_id]
    assert admission.cell == (sent.wijk, sent.category.value, trend_window(NOW.date()))
    token = admission.child_token(b"w" * 32)
    assert sent.subject not in token and accepted.subject not in token
    # The same child in the same window gets the same token; another window key, another.
    assert admission.child_token(b"w" * 32) == token
    assert admission.child_token(b"v" * 32) != token


def test_ids_intake_passes_on_are_keyed_by_the_gateway() -> None:
    """No id downstream is the partner's, or computable from it without intake's key."""
    event = uuid.uuid4()
    registration = REKEY.registration_id("jgz-voorbeeldrade", event)
    assert registration == REKEY.registration_id("jgz-voorbeeldrade", event)  # stable
    assert registration not in (event, scoped_id("jgz-voorbeeldrade", event))
    assert registration != REKEY.registration_id("school-de-regenboog", event)
    other_gateway = Rekeyer({"g1": b"x" * 32}, "g1")
    assert other_gateway.registration_id("jgz-voorbeeldrade", event) != registration
    ids = {registration, REKEY.withdrawal_id("jgz-voorbeeldrade", event)}
    assert len(ids) == 2 and all(i.version == 8 for i in ids)


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


def test_a_request_or_withdrawal_naming_another_partner_is_refused() -> None:
    check_own_topic("school-de-regenboog", "school-de-regenboog", withdrawal=True)  # its own
    for withdrawal, reason in ((True, "withdraw only its own"), (False, "only on its topic")):
        with pytest.raises(Rejection, match=reason) as rejected:
            check_own_topic("jgz-voorbeeldrade", "school-de-regenboog", withdrawal=withdrawal)
        assert rejected.value.code == "partner-mismatch"


def test_signals_from_the_future_are_rejected() -> None:
    sent = signal("school-de-regenboog", pseudonym(), registered_at=NOW + timedelta(hours=1))
    with pytest.raises(Rejection) as rejected:
        screen(sent, topic_partner_id="school-de-regenboog", registry=REGISTRY, now=NOW)
    assert rejected.value.code == "future-timestamp"


@pytest.mark.parametrize("months_on", [0, -1, -30])
def test_a_subject_turning_23_this_month_or_before_is_rejected(months_on: int) -> None:
    # Registrations end at the start of the month the youth turns 23 (rule 5).
    turns_23 = add_months(NOW.date(), months_on)
    sent = signal(
        "school-de-regenboog", pseudonym(), registered_at=NOW, age_limit_month=month_of(turns_23)
    )
    with pytest.raises(Rejection) as rejected:
        screen(sent, topic_partner_id="school-de-regenboog", registry=REGISTRY, now=NOW)
    assert rejected.value.code == "over-age"


def test_a_subject_turning_23_next_month_is_admitted_with_the_month_only() -> None:
    turns_23 = month_of(add_months(NOW.date(), 1))
    sent = signal("school-de-regenboog", pseudonym(), registered_at=NOW, age_limit_month=turns_23)
    accepted = screen(sent, topic_partner_id="school-de-regenboog", registry=REGISTRY, now=NOW)
    assert accepted.age_limit_month == turns_23
    assert "age_cutoff" not in accepted.model_dump_json()


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("partners: nope", ":1: partners: Input should be a valid list"),
        ("partners: [{id: a-b, organisation: X}]", "partners.0.category: Field required"),
        (
            "partners: [{id: a-b, organisation: X, category: bakker}]",
            "partners.0.category: not one of the allowed values",
        ),
        ("partners: [{id: A_B, organisation: X, category: jgz}]", "partners.0.id: 'A_B' must be"),
        ("partners: [{id: a-b, organisation: X, category: jgz, budget: 1}]", "unknown key"),
        (
            "partners: [{id: a-b, organisation: X, category: jgz},"
            " {id: a-b, organisation: Y, category: jgz}]",
            "partner id 'a-b' appears more than once",
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


def test_partner_pseudonyms_are_re_keyed_into_the_matching_domain() -> None:
    child, parent, household = pseudonym(), pseudonym(), pseudonym()
    sent = signal("jgz-voorbeeldrade", child, registered_at=NOW).model_copy(
        update={"parents": [parent], "household": household}
    )
    accepted = screen(sent, topic_partner_id="jgz-voorbeeldrade", registry=REGISTRY, now=NOW)
    personal = SCREENED[sent.event_id].personal
    assert {accepted.subject, *personal.parents, personal.household}.isdisjoint(
        {child, parent, household}
    )
    assert personal.parents == [REKEY(parent)]
    assert personal.household == REKEY(household)
    other_gateway = Rekeyer({"g1": b"x" * 32}, "g1")
    assert other_gateway(child) != REKEY(child)
    assert REKEY(child) == REKEY(child)


def test_a_theme_outside_the_covenant_is_rejected() -> None:
    sent = signal("school-de-regenboog", pseudonym(), registered_at=NOW, category=Category.ARMOEDE)
    with pytest.raises(Rejection) as rejected:
        screen(sent, topic_partner_id="school-de-regenboog", registry=REGISTRY, now=NOW)
    assert rejected.value.code == "theme-not-allowed"


def test_a_stale_event_is_rejected() -> None:
    sent = signal("jgz-voorbeeldrade", pseudonym(), registered_at=NOW - timedelta(days=30))
    sent = sent.model_copy(update={"sent_at": NOW - timedelta(days=15)})
    with pytest.raises(Rejection) as rejected:
        screen(sent, topic_partner_id="jgz-voorbeeldrade", registry=REGISTRY, now=NOW)
    assert rejected.value.code == "stale"


def test_signatures_are_checked_over_the_exact_bytes() -> None:
    partner = REGISTRY.get("school-de-regenboog")
    assert partner is not None
    value = signal("school-de-regenboog", pseudonym()).to_bytes()
    verify_signature(partner, "school-1", KEY.sign(value), value)
    for key_id, signature, body, code in [
        (None, None, value, "unsigned"),
        ("school-2", KEY.sign(value), value, "unknown-signing-key"),
        ("school-1", KEY.sign(value), value.replace(b"WK", b"WX"), "bad-signature"),
        ("school-1", Ed25519PrivateKey.generate().sign(value), value, "bad-signature"),
    ]:
        with pytest.raises(Rejection) as rejected:
            verify_signature(partner, key_id, signature, body)
        assert rejected.value.code == code


def test_an_observation_has_one_size_whatever_its_theme_and_wijk() -> None:
    """Held sealed until counted: its size must not tell the theme (or the wijk)."""
    sizes = {
        len(Observation(wijk, theme.value, "2026-W49", "f" * 32).to_bytes())
        for theme in Category
        for wijk in ("WK099901", "WK123456")
    }
    assert sizes == {OBSERVATION_SIZE}
    seen = Observation("WK099901", "pesten", "2026-W49", "f" * 32)
    assert Observation.from_bytes(seen.to_bytes()) == seen

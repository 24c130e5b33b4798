"""The person-match rule and the lifetime of a registration."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from services.matching.domain import Registration, decide_person_match, expires_at
from shared.contracts import MatchKind
from tests.factories import pseudonym, worker

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SUBJECT = pseudonym()


def registration(org: str, *, days_ago: int = 1, active_days: int = 730) -> Registration:
    at = NOW - timedelta(days=days_ago)
    return Registration(
        registration_id=uuid.uuid4(),
        subject=SUBJECT,
        organisation=org,
        worker=worker(f"{org}-1"),
        wijk="WK099901",
        registered_at=at,
        expires_at=at + timedelta(days=active_days),
    )


def decide(regs: list[Registration], *, open_match: bool = False):  # type: ignore[no-untyped-def]
    return decide_person_match(
        regs, now=NOW, open_match=open_match, min_organisations=2, policy_version="test-1"
    )


def test_two_organisations_on_one_subject_raise_a_person_match() -> None:
    a, b = registration("school"), registration("jgz")
    decision = decide([a, b])
    assert decision is not None
    assert decision.kind is MatchKind.PERSON
    assert {p.registration_id for p in decision.participants} == {
        a.registration_id,
        b.registration_id,
    }
    assert decision.policy_version == "test-1"
    assert ">= 2 organisations" in decision.rule


def test_one_organisation_registering_twice_is_no_match() -> None:
    assert decide([registration("school"), registration("school", days_ago=3)]) is None


def test_expired_registrations_do_not_count() -> None:
    stale = registration("jgz", days_ago=800)
    assert decide([registration("school"), stale]) is None


def test_no_second_match_while_one_is_open() -> None:
    assert decide([registration("school"), registration("jgz")], open_match=True) is None


def test_the_newest_registration_of_each_organisation_takes_part() -> None:
    old, new = registration("school", days_ago=5), registration("school", days_ago=1)
    decision = decide([new, old, registration("jgz")])
    assert decision is not None
    ids = {p.registration_id for p in decision.participants}
    assert new.registration_id in ids
    assert old.registration_id not in ids


def test_a_registration_ends_at_two_years_or_the_23rd_birthday_whichever_first() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert expires_at(at, date(2040, 1, 1), active_days=730) == at + timedelta(days=730)
    assert expires_at(at, date(2027, 3, 1), active_days=730) == datetime(2027, 3, 1, tzinfo=UTC)

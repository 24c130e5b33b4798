"""Who is told what about a match: that information, never what."""

from __future__ import annotations

import uuid

from services.notification.domain import Alert, alerts_for_join
from services.notification.domain import alerts_for as alerts_rule
from shared.contracts import (
    MatchContact,
    MatchJoined,
    MatchKind,
    MatchParticipant,
    MatchRaised,
    SealedMatch,
)
from tests.factories import pseudonym, worker

_CONTACTS: dict[uuid.UUID, SealedMatch] = {}


def match(*worker_ids: str) -> MatchRaised:
    ids = [uuid.uuid4() for _ in worker_ids]
    subject = pseudonym()
    raised = MatchRaised(
        match_id=uuid.uuid4(),
        kind=MatchKind.PERSON,
        key=subject,
        subject=subject,
        participants=[
            MatchParticipant(registration_id=i, organisation=f"org-{w}")
            for i, w in zip(ids, worker_ids, strict=True)
        ],
        sealed="v1.AAAA",
        rule="person-match",
        policy_version="test-1",
    )
    _CONTACTS[raised.match_id] = SealedMatch(
        wijk="WK099902",
        contacts=[
            MatchContact(registration_id=i, worker=worker(w))
            for i, w in zip(ids, worker_ids, strict=True)
        ],
    )
    return raised


def alerts_for(raised: MatchRaised) -> list[Alert]:
    """The rule applied to the match and its opened seal."""
    return alerts_rule(raised, _CONTACTS[raised.match_id])


def test_every_involved_worker_gets_one_alert_naming_the_others() -> None:
    alerts = alerts_for(match("a", "b", "c"))
    assert sorted(a.recipient.worker_id for a in alerts) == ["a", "b", "c"]
    for alert in alerts:
        others = {c.worker_id for c in alert.contacts}
        assert others == {"a", "b", "c"} - {alert.recipient.worker_id}


def test_a_worker_registering_for_two_organisations_gets_one_alert() -> None:
    assert len(alerts_for(match("a", "a", "b"))) == 2


def test_alert_ids_are_stable_so_a_redelivered_match_adds_nothing() -> None:
    m = match("a", "b")
    assert [a.alert_id for a in alerts_for(m)] == [a.alert_id for a in alerts_for(m)]


def test_an_alert_carries_no_subject_and_no_category() -> None:
    alert = alerts_for(match("a", "b"))[0]
    fields = set(vars(alert))
    assert "subject" not in fields
    assert "category" not in fields


def test_a_newcomer_learns_everyone_and_everyone_learns_of_the_newcomer() -> None:
    raised = match("a", "b", "c")
    contacts = _CONTACTS[raised.match_id]
    newcomer = contacts.contacts[-1].registration_id
    joined = MatchJoined(
        match_id=raised.match_id,
        kind=raised.kind,
        key=raised.key,
        subject=raised.subject,
        newcomers=[newcomer],
        participants=raised.participants,
        sealed="v1.AAAA",
        rule="person-match",
        policy_version="test-1",
    )
    alerts = {a.recipient.worker_id: a for a in alerts_for_join(joined, contacts)}
    assert {c.worker_id for c in alerts["c"].contacts} == {"a", "b"}
    assert [c.worker_id for c in alerts["a"].contacts] == ["c"]
    assert [c.worker_id for c in alerts["b"].contacts] == ["c"]
    raised_ids = {a.alert_id for a in alerts_for(raised)}
    assert raised_ids.isdisjoint(a.alert_id for a in alerts.values())

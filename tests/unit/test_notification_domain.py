"""Who is told what about a match, who coordinates, whom the family-informing task
addresses, and when working-day periods run out (BRIEF §3 rules 7-10)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from services.notification.domain import (
    About,
    OverdueKind,
    Part,
    TeamWorker,
    add_working_days,
    ages_on,
    alerts_for_join,
    alerts_for_match,
    alerts_to_all,
    choose_coordinator,
    informing_addressee,
    is_working_day,
    keeps_coordinator,
    no_contact_overdue,
    overdue,
    regie_oversees,
    still_overdue,
    transfer_alerts,
    unacknowledged_overdue,
    waiting_for_recipient,
)
from shared.contracts import MatchContact, MatchKind, OrganisationCategory
from shared.policy import Policy
from tests.factories import worker

POLICY = Policy.parse(open("config/policy.yaml").read())  # noqa: SIM115
JGZ = OrganisationCategory.JEUGDHULP
SCHOOL = OrganisationCategory.ONDERWIJS
POLICE = OrganisationCategory.POLITIE


def contacts(
    *worker_ids: str, turns_23: str | None = None, subject: str = "a" * 64
) -> list[MatchContact]:
    return [
        MatchContact(
            registration_id=uuid.uuid4(),
            subject=subject,
            worker=worker(w),
            organisation=f"org-{w}",
            organisation_category=JGZ,
            age_limit_month=turns_23,
        )
        for w in worker_ids
    ]


MATCH = uuid.uuid4()


def test_every_involved_worker_gets_one_alert_naming_the_others_and_the_coordinator() -> None:
    coordinator = worker("jgt-1")
    alerts = alerts_for_match(MATCH, MatchKind.PERSON, contacts("a", "b", "c"), coordinator, [])
    by_recipient = {a.recipient.worker_id: a for a in alerts}
    assert sorted(by_recipient) == ["a", "b", "c", "jgt-1"]
    for wid in "abc":
        alert = by_recipient[wid]
        assert alert.part is Part.REGISTRANT
        assert {c.worker_id for c in alert.contacts} == {"a", "b", "c"} - {wid}
        assert alert.coordinator == coordinator
    assert by_recipient["jgt-1"].part is Part.COORDINATOR
    assert {c.worker_id for c in by_recipient["jgt-1"].contacts} == {"a", "b", "c"}


def test_the_regie_role_is_told_only_of_a_match_without_a_coordinator() -> None:
    """It follows the others in its overview: no alert per match."""
    regie = worker("regie-1")
    alerts = alerts_for_match(MATCH, MatchKind.PERSON, contacts("a", "b"), None, [regie])
    told = next(a for a in alerts if a.recipient == regie)
    assert told.part is Part.REGIE
    assert told.contacts == ()
    assert "no coordinator could be assigned" in told.message  # None was given
    coordinated = alerts_for_match(
        MATCH, MatchKind.PERSON, contacts("a", "b"), worker("c"), [regie]
    )
    assert [a.recipient.worker_id for a in coordinated if a.part is Part.REGIE] == []


def test_a_worker_registering_twice_gets_one_alert() -> None:
    alerts = alerts_for_match(MATCH, MatchKind.PERSON, contacts("a", "a", "b"), None, [])
    assert len(alerts) == 2


def test_alert_ids_are_stable_so_a_redelivered_event_adds_nothing() -> None:
    c = contacts("a", "b")
    first = alerts_for_match(MATCH, MatchKind.PERSON, c, None, [])
    again = alerts_for_match(MATCH, MatchKind.PERSON, c, None, [])
    assert [a.alert_id for a in first] == [a.alert_id for a in again]
    assert len({a.alert_id for a in first}) == 2


def test_a_family_alert_says_only_another_child_in_the_same_family() -> None:
    alert = alerts_for_match(MATCH, MatchKind.FAMILY, contacts("a", "b"), None, [])[0]
    assert "another child in the same family" in alert.message
    assert "subject" not in vars(alert) and "category" not in vars(alert)


def test_a_newcomer_learns_everyone_and_everyone_learns_of_the_newcomer() -> None:
    c = contacts("a", "b", "c")
    coordinator = worker("jgt-1")
    alerts = alerts_for_join(MATCH, MatchKind.PERSON, c, {c[-1].registration_id}, coordinator)
    by_recipient = {a.recipient.worker_id: {w.worker_id for w in a.contacts} for a in alerts}
    assert by_recipient == {"c": {"a", "b"}, "a": {"c"}, "b": {"c"}, "jgt-1": {"c"}}


def test_a_notice_to_everyone_reaches_each_person_once() -> None:
    a, b = worker("a"), worker("b")
    alerts = alerts_to_all(
        MATCH,
        MatchKind.PERSON,
        [(a, Part.REGISTRANT), (b, Part.REGISTRANT), (a, Part.COORDINATOR)],
        "dissolved",
        "ended",
        None,
    )
    assert sorted(x.recipient.worker_id for x in alerts) == ["a", "b"]


def team(*rows: tuple[str, OrganisationCategory, bool, int]) -> list[TeamWorker]:
    return [TeamWorker(*r) for r in rows]


def test_the_coordinator_is_the_least_loaded_eligible_worker_of_the_team() -> None:
    workers = team(("w1", JGZ, True, 3), ("w2", JGZ, True, 1), ("w3", JGZ, True, 1))
    assert choose_coordinator(None, workers, POLICY) == "w2"  # tie: lowest id


def test_excluded_categories_and_inactive_workers_never_coordinate() -> None:
    workers = team(
        ("school", SCHOOL, True, 0), ("police", POLICE, True, 0), ("gone", JGZ, False, 0)
    )
    assert choose_coordinator(None, workers, POLICY) is None
    workers.append(TeamWorker("busy", JGZ, True, 9))
    assert choose_coordinator(None, workers, POLICY) == "busy"


def test_the_familys_coordinator_is_kept_while_active_and_eligible() -> None:
    workers = team(("w1", JGZ, True, 0))
    assert choose_coordinator(TeamWorker("fam", JGZ, True, 7), workers, POLICY) == "fam"
    assert choose_coordinator(TeamWorker("fam", JGZ, False, 7), workers, POLICY) == "w1"
    assert choose_coordinator(TeamWorker("fam", SCHOOL, True, 7), workers, POLICY) == "w1"


@pytest.mark.parametrize(
    ("turns_23", "on", "ages", "addressee"),
    [
        ("2038-06", date(2027, 5, 31), {11}, "parents"),  # 11, the month before 12
        ("2038-06", date(2027, 6, 1), {11, 12}, "youth and parents"),  # turns 12 this month
        ("2038-06", date(2027, 6, 30), {11, 12}, "youth and parents"),
        ("2038-06", date(2027, 7, 1), {12}, "youth and parents"),  # 12
        ("2033-06", date(2026, 5, 31), {15}, "youth and parents"),  # 15
        ("2033-06", date(2026, 6, 15), {15, 16}, "youth and parents"),  # turns 16 this month
        ("2033-06", date(2026, 7, 1), {16}, "youth"),  # 16
        ("2033-06", date(2026, 1, 1), {15}, "youth and parents"),
        ("2030-02", date(2026, 2, 28), {18, 19}, "youth"),  # no boundary crossed
    ],
)
def test_the_family_is_informed_by_the_youths_age_known_to_the_month(
    turns_23: str, on: date, ages: set[int], addressee: str
) -> None:
    assert ages_on(turns_23, on) == ages
    contact = contacts("a", turns_23=turns_23)[0]
    assert informing_addressee(contact, on, POLICY) == addressee
    # A policy's lower age limit ends registrations sooner; it changes no one's age.
    younger_limit = POLICY.model_copy(
        update={"retention": POLICY.retention.model_copy(update={"age_limit_years": 18})}
    )
    assert informing_addressee(contact, on, younger_limit) == addressee


def test_an_unknown_age_informs_youth_and_parents() -> None:
    assert informing_addressee(contacts("a")[0], date(2026, 1, 1), POLICY) == "youth and parents"


def test_working_days_skip_weekends_and_dutch_public_holidays() -> None:
    assert not is_working_day(date(2026, 12, 25))  # Christmas, a Friday
    assert not is_working_day(date(2026, 4, 27))  # King's Day, a Monday
    assert not is_working_day(date(2026, 11, 28))  # a Saturday
    assert is_working_day(date(2026, 11, 23))
    # Thursday 24 Dec + 2 working days: Christmas (Fri), weekend, Boxing Day... -> Tue 29th
    start = datetime(2026, 12, 24, 9, tzinfo=UTC)
    assert add_working_days(start, 2) == datetime(2026, 12, 29, 9, tzinfo=UTC)
    assert not overdue(start, 2, datetime(2026, 12, 28, 12, tzinfo=UTC))
    assert overdue(start, 2, datetime(2026, 12, 29, 9, tzinfo=UTC))


def test_working_days_are_dutch_days() -> None:
    # 23:30 UTC on Friday is 00:30 on Saturday in Amsterdam: one working day later is
    # Monday 00:30 there (Sunday 23:30 UTC), not Monday 23:30 UTC as UTC days would say.
    friday_night = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    assert add_working_days(friday_night, 1) == datetime(2026, 11, 22, 23, 30, tzinfo=UTC)


def test_an_unacknowledged_alert_goes_on_the_team_leads_overview_or_else_the_regie_roles() -> None:
    lead, regie = worker("lead"), [worker("r1"), worker("r2")]
    late_alert = uuid.uuid4()
    (to_lead,) = unacknowledged_overdue(late_alert, MATCH, [lead], regie)
    assert (to_lead.recipient, to_lead.kind) == (lead, OverdueKind.UNACKNOWLEDGED)
    assert (to_lead.match_id, to_lead.alert_id) == (MATCH, late_alert)
    without_lead = unacknowledged_overdue(late_alert, MATCH, [], regie)
    assert [i.recipient.worker_id for i in without_lead] == ["r1", "r2"]
    # Once per late alert: the same alert is the same item, another alert another one.
    assert unacknowledged_overdue(late_alert, MATCH, [lead], regie) == [to_lead]
    (other,) = unacknowledged_overdue(uuid.uuid4(), MATCH, [lead], regie)
    both = unacknowledged_overdue(late_alert, MATCH, [lead, worker("lead2")], regie)
    assert [i.recipient.worker_id for i in both] == ["lead", "lead2"]  # each lead's overview
    assert other.item_id != to_lead.item_id


def test_a_match_without_contact_goes_on_the_regie_roles_overview_once() -> None:
    regie = [worker("r1"), worker("r2")]
    items = no_contact_overdue(MATCH, regie)
    assert [(i.recipient.worker_id, i.kind, i.alert_id) for i in items] == [
        ("r1", OverdueKind.NO_CONTACT, None),
        ("r2", OverdueKind.NO_CONTACT, None),
    ]
    assert no_contact_overdue(MATCH, regie) == items
    assert not {i.item_id for i in items} & {
        i.item_id for i in no_contact_overdue(uuid.uuid4(), regie)
    }


def test_a_transfer_tells_every_worker_both_coordinators_and_the_regie_role_once() -> None:
    a, b, old, new, regie = worker("a"), worker("b"), worker("old"), worker("new"), worker("r")
    transfer = uuid.uuid4()
    told = transfer_alerts(MATCH, MatchKind.PERSON, transfer, [a, b, a], old, new, [regie])
    assert [(t.recipient.worker_id, t.part) for t in told] == [
        ("a", Part.REGISTRANT),
        ("b", Part.REGISTRANT),
        ("old", Part.COORDINATOR),
        ("new", Part.COORDINATOR),
        ("r", Part.REGIE),
    ]
    assert {t.occasion for t in told} == {f"transferred:{transfer}"}
    assert all(t.coordinator == new for t in told)  # whom to contact from now on
    # Kept within the team (the same coordinator): told once, as the coordinator.
    kept = transfer_alerts(MATCH, MatchKind.PERSON, transfer, [a], old, old, [])
    assert [(t.recipient.worker_id, t.part) for t in kept] == [
        ("a", Part.REGISTRANT),
        ("old", Part.COORDINATOR),
    ]
    # Redelivered: the same alert ids.
    again = transfer_alerts(MATCH, MatchKind.PERSON, transfer, [a, b, a], old, new, [regie])
    assert [t.alert_id for t in again] == [t.alert_id for t in told]


def test_a_move_keeps_the_coordinator_only_within_the_team() -> None:
    c = worker("c")
    assert keeps_coordinator("jgt-noord", "jgt-noord", c)
    assert not keeps_coordinator("jgt-noord", "jgt-zuid", c)
    assert not keeps_coordinator("jgt-noord", "jgt-noord", None)


def test_an_alert_is_about_the_children_its_recipient_may_learn_of() -> None:
    """In a family match, a registering worker's alert is about the children that worker
    registered only; the coordinator's (or, with none, the regie's) about every child."""
    anna, bram = "a" * 64, "b" * 64
    parties = [*contacts("juf", subject=anna), *contacts("dokter", subject=bram)]
    parties += contacts("jgz", subject=anna) + contacts("jgz", subject=bram)
    about = About.of_parties((c.worker.worker_id, c.subject) for c in parties)
    coordinator = worker("coordinator")
    alerts = alerts_for_match(MATCH, MatchKind.FAMILY, parties, coordinator, [worker("regie")])
    by_recipient = {(a.recipient.worker_id, a.part): about.of(a) for a in alerts}
    assert by_recipient[("juf", Part.REGISTRANT)] == [anna]
    assert by_recipient[("dokter", Part.REGISTRANT)] == [bram]
    assert by_recipient[("jgz", Part.REGISTRANT)] == [anna, bram]
    assert by_recipient[("coordinator", Part.COORDINATOR)] == [anna, bram]
    unassigned = alerts_for_match(MATCH, MatchKind.FAMILY, parties, None, [worker("regie")])
    assert [about.of(a) for a in unassigned if a.part is Part.REGIE] == [[anna, bram]]


def test_a_gone_key_forgets_a_person_match_not_a_family_match() -> None:
    from services.notification.domain import forgotten_when_key_is_gone

    assert forgotten_when_key_is_gone(MatchKind.PERSON)
    assert not forgotten_when_key_is_gone(MatchKind.FAMILY)


def test_an_overview_item_stays_until_what_it_is_about_is_followed_up() -> None:
    late, quiet = OverdueKind.UNACKNOWLEDGED, OverdueKind.NO_CONTACT
    assert still_overdue(late, match_open=True, acknowledged=False, contact_made=True)
    assert not still_overdue(late, match_open=True, acknowledged=True, contact_made=False)
    assert still_overdue(quiet, match_open=True, acknowledged=True, contact_made=False)
    assert not still_overdue(quiet, match_open=True, acknowledged=False, contact_made=True)
    for kind in OverdueKind:  # a closed match is followed up, whatever else
        assert not still_overdue(kind, match_open=False, acknowledged=False, contact_made=False)


def test_a_case_waits_for_its_recipient_while_an_alert_is_unread_or_a_task_open() -> None:
    assert waiting_for_recipient(unread_alerts=1, open_tasks=0)
    assert waiting_for_recipient(unread_alerts=0, open_tasks=2)
    assert not waiting_for_recipient(unread_alerts=0, open_tasks=0)


def test_the_regie_role_oversees_a_teams_late_alerts_only_without_a_lead() -> None:
    lead, regie = worker("lead"), worker("regie")
    assert regie_oversees(0) and not regie_oversees(1)
    match, alert = uuid.uuid4(), uuid.uuid4()
    assert [o.recipient for o in unacknowledged_overdue(alert, match, [lead], [regie])] == [lead]
    assert [o.recipient for o in unacknowledged_overdue(alert, match, [], [regie])] == [regie]

"""The matching rules of BRIEF §3, one by one, with their boundaries. Pure: no I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from services.matching.domain import (
    Dissolve,
    EndReason,
    FamilyClusters,
    Join,
    Leave,
    OpenMatch,
    Raise,
    Registration,
    Transfer,
    archive_until,
    decide,
    end_reason_at,
    expires_at,
    family_links,
    withdrawal_end,
)
from shared.contracts import MatchKind, WithdrawalReason, month_of, month_start
from shared.policy import Policy, PolicyError
from tests.factories import pseudonym, worker

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY_TEXT = """
version: test-1
municipality: Voorbeeldrade
authorised_categories: [jgz, onderwijs, huisarts, politie]
coordinating_categories: [jgz, huisarts]
"""
POLICY = Policy.parse(POLICY_TEXT)
CHILD, SIBLING = pseudonym(), pseudonym()


def reg(
    org: str,
    *,
    subject: str = CHILD,
    days_ago: float = 1,
    wijk: str = "WK099901",
    turns_23: str = "2040-01",
) -> Registration:
    cutoff = month_start(turns_23)
    at = NOW - timedelta(days=days_ago)
    return Registration(
        registration_id=uuid.uuid4(),
        subject=subject,
        organisation=org,
        worker=worker(f"{org}-1"),
        wijk=wijk,
        registered_at=at,
        expires_at=expires_at(at, cutoff, active_days=POLICY.retention.active_days),
        age_limit_from=cutoff,
    )


def person(regs: list[Registration], open_match: OpenMatch | None = None, policy: Policy = POLICY):  # type: ignore[no-untyped-def]
    return decide(MatchKind.PERSON, CHILD, regs, open_match, policy, NOW)


def opened(decision: Raise) -> OpenMatch:
    return OpenMatch(
        decision.match_id,
        decision.kind,
        decision.key,
        frozenset(r.registration_id for r in decision.participants),
        decision.wijk,
    )


# --- rule 3: person match -----------------------------------------------------------


def test_two_organisations_on_one_child_raise_a_person_match_with_its_explanation() -> None:
    a, b = reg("school"), reg("jgz")
    (decision,) = person([a, b])
    assert isinstance(decision, Raise)
    assert {r.registration_id for r in decision.participants} == {
        a.registration_id,
        b.registration_id,
    }
    assert decision.policy_version == "test-1"
    assert "rule 3" in decision.rule


def test_one_organisation_registering_twice_is_no_match() -> None:
    assert person([reg("school"), reg("school", days_ago=3)]) == []


def test_the_policy_may_let_one_organisation_count_twice() -> None:
    lenient = Policy.parse(POLICY_TEXT + "matching: {same_organisation_counts: true}")
    (decision,) = person([reg("school"), reg("school", days_ago=3)], policy=lenient)
    assert isinstance(decision, Raise)


def test_the_policy_sets_how_many_organisations_make_a_match() -> None:
    strict = Policy.parse(POLICY_TEXT + "matching: {min_organisations: 3}")
    assert person([reg("school"), reg("jgz")], policy=strict) == []
    assert len(person([reg("school"), reg("jgz"), reg("gp")], policy=strict)) == 1


def test_decisions_are_deterministic() -> None:
    regs = [reg("school"), reg("jgz")]
    assert person(regs) == person(list(reversed(regs)))


# --- rule 5: the active period and the age limit --------------------------------------


def test_a_registration_counts_until_exactly_two_years() -> None:
    almost = reg("jgz", days_ago=729.99)
    gone = reg("jgz", days_ago=730)
    assert len(person([reg("school"), almost])) == 1
    assert person([reg("school"), gone]) == []


def test_a_registration_counts_until_the_month_the_youth_turns_23() -> None:
    # Only the month is known: the registration ends at its start, whatever the day.
    next_month = month_of(date(NOW.year + NOW.month // 12, NOW.month % 12 + 1, 1))
    assert len(person([reg("school", turns_23=next_month), reg("jgz", turns_23=next_month)])) == 1
    this_month = month_of(NOW.date())
    assert person([reg("school", turns_23=this_month), reg("jgz", turns_23=this_month)]) == []
    ends = reg("jgz", days_ago=10, turns_23=next_month).expires_at
    assert (ends.day, ends.hour, ends.minute) == (1, 0, 0)


def test_expiry_and_the_age_limit_are_told_apart() -> None:
    expired = reg("jgz", days_ago=731)
    assert end_reason_at(expired, NOW) is EndReason.EXPIRED
    aged = reg("jgz", days_ago=10, turns_23=month_of(NOW.date()))
    assert end_reason_at(aged, NOW) is EndReason.AGE_LIMIT
    assert end_reason_at(reg("jgz"), NOW) is None


# --- lifecycle: join, dissolve, transfer (rules 3, 5, 9) -----------------------------


def test_a_new_organisation_joins_the_open_match() -> None:
    a, b = reg("school", days_ago=5), reg("jgz", days_ago=4)
    (raised,) = person([a, b])
    c = reg("gp", days_ago=1)
    (joined,) = person([a, b, c], opened(raised))
    assert isinstance(joined, Join)
    assert joined.newcomers == (c,)
    assert joined.match_id == raised.match_id


def test_withdrawing_one_of_two_registrations_dissolves_the_match() -> None:
    a, b = reg("school"), reg("jgz")
    (raised,) = person([a, b])
    withdrawn = b.ended(EndReason.WITHDRAWN_UNJUSTIFIED, NOW)
    (dissolved,) = person([a, withdrawn], opened(raised))
    assert isinstance(dissolved, Dissolve)
    assert dissolved.remaining == (a,)


def test_a_registration_that_ends_leaves_a_match_that_goes_on() -> None:
    a, b, c = reg("school"), reg("jgz"), reg("gp")
    (raised,) = person([a, b, c])
    withdrawn = a.ended(EndReason.WITHDRAWN_UNJUSTIFIED, NOW)
    (left,) = person([withdrawn, b, c], opened(raised))
    assert isinstance(left, Leave)
    assert left.left == (a.registration_id,)
    assert set(left.participants) == {b, c}
    # Once gone from the match, nothing more is decided for it.
    after = OpenMatch(raised.match_id, raised.kind, raised.key,
                      frozenset({b.registration_id, c.registration_id}), raised.wijk)  # fmt: skip
    assert person([withdrawn, b, c], after) == []


def test_a_registration_in_another_wijk_transfers_coordination() -> None:
    a, b = reg("school", days_ago=5), reg("jgz", days_ago=4)
    (raised,) = person([a, b])
    moved = reg("gp", days_ago=1, wijk="WK099905")
    decisions = person([a, b, moved], opened(raised))
    transfer = next(d for d in decisions if isinstance(d, Transfer))
    assert (transfer.from_wijk, transfer.to_wijk) == ("WK099901", "WK099905")


# --- rule 6: the archive -------------------------------------------------------------


def test_normally_ended_registrations_are_archived_five_years_but_never_past_23() -> None:
    ended = reg("jgz").ended(EndReason.EXPIRED, NOW)
    assert archive_until(ended, POLICY) == NOW + timedelta(days=5 * 365)
    young = reg("jgz", turns_23="2028-06").ended(EndReason.EXPIRED, NOW)
    assert archive_until(young, POLICY) == datetime(2028, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "reason", [EndReason.WITHDRAWN_UNJUSTIFIED, EndReason.ERASED, EndReason.AGE_LIMIT]
)
def test_unjustified_erased_and_aged_out_registrations_are_not_archived(reason: EndReason) -> None:
    assert archive_until(reg("jgz").ended(reason, NOW), POLICY) is None


# --- rule 4: family match ------------------------------------------------------------


def test_registrations_on_two_children_of_one_family_raise_a_family_match() -> None:
    family = [reg("school", subject=CHILD), reg("jgz", subject=SIBLING)]
    (decision,) = decide(MatchKind.FAMILY, "root", family, None, POLICY, NOW)
    assert isinstance(decision, Raise)
    assert "rule 4" in decision.rule


def test_one_child_alone_is_no_family_match() -> None:
    alone = [reg("school"), reg("jgz")]
    assert decide(MatchKind.FAMILY, "root", alone, None, POLICY, NOW) == []


def test_a_parent_appearing_later_merges_two_families() -> None:
    clusters = FamilyClusters()
    first = clusters.link(CHILD, ["parent:mother"])
    second = clusters.link(SIBLING, ["parent:father"])
    assert first != second
    merged = clusters.link(SIBLING, ["parent:mother"])
    assert clusters.members(merged) == {CHILD, SIBLING}
    assert clusters.find(f"s:{CHILD}") == clusters.find(f"s:{SIBLING}")


def test_the_cluster_does_not_depend_on_arrival_order() -> None:
    one, two = FamilyClusters(), FamilyClusters()
    one.link(CHILD, ["parent:p"])
    one.link(SIBLING, ["household:h", "parent:p"])
    two.link(SIBLING, ["household:h", "parent:p"])
    two.link(CHILD, ["parent:p"])
    assert one.find(f"s:{CHILD}") == two.find(f"s:{CHILD}")


def test_the_policy_chooses_the_family_links() -> None:
    only_parents = Policy.parse(POLICY_TEXT + "matching: {family: {links: [parent]}}")
    assert family_links(["m"], "h", only_parents) == ["parent:m"]
    off = Policy.parse(POLICY_TEXT + "matching: {family: {enabled: false}}")
    assert family_links(["m"], "h", off) == []


# --- the policy file -----------------------------------------------------------------


def test_the_shipped_policy_is_valid() -> None:
    from shared.settings import Settings

    shipped = Policy.parse(Settings().policy_file.read_text())
    assert shipped.matching.min_organisations == 2
    assert shipped.retention.active_days == 730


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("matching: {min_organisations: 1}", ":6: matching.min_organisations"),
        ("matching: {famly: {}}", "matching.famly: unknown key"),
        ("retention: {archive_years: many}", "retention.archive_years"),
        ("aggregates:\n  k: 1", ":7: aggregates.k"),
    ],
)
def test_a_broken_policy_names_line_field_and_what_is_allowed(extra: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy.parse(POLICY_TEXT + extra)


def test_an_unknown_category_lists_the_allowed_ones() -> None:
    with pytest.raises(PolicyError, match=r"allowed: .*jeugdhulp"):
        Policy.parse(POLICY_TEXT.replace("[jgz, huisarts]", "[jgz, bakker]"))


def test_coordinators_must_be_authorised() -> None:
    with pytest.raises(PolicyError, match="unauthorised categories: kinderopvang"):
        Policy.parse(POLICY_TEXT.replace("[jgz, huisarts]", "[jgz, kinderopvang]"))


def test_only_authorised_categories_may_register() -> None:
    from shared.contracts import OrganisationCategory

    assert POLICY.authorises(OrganisationCategory.JGZ)
    assert not POLICY.authorises(OrganisationCategory.KINDEROPVANG)


def test_a_withdrawal_archives_a_resolved_registration_and_takes_an_unjustified_one_away() -> None:
    resolved, unjustified = WithdrawalReason.RESOLVED, WithdrawalReason.UNJUSTIFIED
    assert withdrawal_end(resolved, None) is EndReason.WITHDRAWN_RESOLVED
    assert withdrawal_end(unjustified, None) is EndReason.WITHDRAWN_UNJUSTIFIED
    assert EndReason.WITHDRAWN_RESOLVED.archived and not EndReason.WITHDRAWN_UNJUSTIFIED.archived
    # Already ended (expired, archived): resolving it again changes nothing, but calling
    # it unjustified takes it out of the archive too.
    assert withdrawal_end(resolved, EndReason.EXPIRED) is None
    assert withdrawal_end(unjustified, EndReason.EXPIRED) is EndReason.WITHDRAWN_UNJUSTIFIED
    assert withdrawal_end(unjustified, EndReason.WITHDRAWN_UNJUSTIFIED) is (
        EndReason.WITHDRAWN_UNJUSTIFIED
    )


def test_a_partners_erasure_request_ends_only_its_own_registrations() -> None:
    from dataclasses import dataclass as _dataclass

    from services.matching.domain import erased_at_partners_request

    @_dataclass(frozen=True)
    class Kept:
        partner_id: str | None

    school, gp, old = Kept("school"), Kept("gp"), Kept(None)
    assert erased_at_partners_request([school, gp, old], "school") == [school]
    assert erased_at_partners_request([gp, old], "school") == []

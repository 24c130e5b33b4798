"""Properties of the matching domain, over generated event streams (hypothesis)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.domain import Raise, counted
from services.matching.replay import Replay
from shared.contracts import MatchKind, OrganisationCategory, SealedSignal, SignalAccepted
from shared.policy import Policy
from tests.factories import worker

POLICY = Policy.parse(
    """
version: prop-1
municipality: Voorbeeldrade
authorised_categories: [jgz, onderwijs, huisarts]
coordinating_categories: [jgz, huisarts]
"""
)
SUBJECTS = [f"{n:064x}" for n in range(1, 7)]
PARENTS = [f"{n:064x}" for n in range(100, 103)]
ORGS = {
    "school": OrganisationCategory.ONDERWIJS,
    "jgz": OrganisationCategory.JGZ,
    "gp": OrganisationCategory.HUISARTS,
}
START = datetime(2026, 3, 1, tzinfo=UTC)

signal_spec = st.tuples(
    st.sampled_from(SUBJECTS),
    st.sampled_from(sorted(ORGS)),
    st.lists(st.sampled_from(PARENTS), max_size=2, unique=True),
)


def events_of(specs: list[tuple[str, str, list[str]]]) -> list[tuple[SignalAccepted, SealedSignal]]:
    out = []
    for n, (subject, org, parents) in enumerate(specs):
        event_id = uuid.uuid5(uuid.NAMESPACE_OID, f"{n}")
        out.append(
            (
                SignalAccepted(
                    event_id=event_id,
                    signal_id=event_id,
                    partner_id=f"{org}-p",
                    subject=subject,
                    organisation=org,
                    organisation_category=ORGS[org],
                    registered_at=START + timedelta(minutes=n),
                    age_limit_month="2040-01",
                    sealed="v1.AAAA",
                ),
                SealedSignal(worker=worker(f"{org}-1"), wijk="WK099901", parents=parents),
            )
        )
    return out


def live_matches(
    stream: list[tuple[SignalAccepted, SealedSignal]],
) -> set[tuple[str, str, frozenset[uuid.UUID]]]:
    """Each open match with the registrations that currently make it hold."""
    state = Replay(POLICY)
    for event, personal in stream:
        state.add(event, personal)
    now = START + timedelta(days=1)
    live = set()
    for (kind, key), match in state.open_matches.items():
        if kind is MatchKind.PERSON:
            regs = state.registrations[key]
        else:
            members = state.clusters.members(key)
            regs = [r for s in members for r in state.registrations.get(s, [])]
        current = frozenset(r.registration_id for r in counted(regs, POLICY, now))
        assert current <= match.participants  # everyone who counts was told
        live.add((kind.value, key, current))
    return live


@settings(max_examples=150, deadline=None)
@given(st.lists(signal_spec, min_size=1, max_size=14), st.randoms(use_true_random=False))
def test_live_matches_do_not_depend_on_how_subjects_interleave(specs, rng) -> None:  # type: ignore[no-untyped-def]
    stream = events_of(specs)
    # Another interleaving: each subject's own events keep their order.
    per_subject: dict[str, list[tuple[SignalAccepted, SealedSignal]]] = {}
    for item in stream:
        per_subject.setdefault(item[0].subject, []).append(item)
    queues = list(per_subject.values())
    shuffled = []
    while queues:
        queue = rng.choice(queues)
        shuffled.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    assert live_matches(stream) == live_matches(shuffled)


@settings(max_examples=100, deadline=None)
@given(st.lists(signal_spec, min_size=1, max_size=14))
def test_replaying_a_stream_twice_gives_the_same_decisions(specs) -> None:  # type: ignore[no-untyped-def]
    def run() -> list[object]:
        state = Replay(POLICY)
        return [d for e, p in events_of(specs) for d in state.add(e, p)]

    first, second = run(), run()
    assert first == second
    # Every raised match is one the rule allows: two organisations at least.
    for d in first:
        if isinstance(d, Raise):
            assert len({r.organisation for r in d.participants}) >= 2

"""Properties of matching's use cases (the production code path, on the in-memory
repository), over generated event streams (hypothesis)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.domain import counted
from services.matching.replay import ReplayKeys, repeatable_repository
from services.matching.usecases import Matching
from shared.contracts import (
    Contract,
    MatchDissolved,
    MatchJoined,
    MatchKind,
    MatchLeft,
    MatchRaised,
    OrganisationCategory,
    RegistrationWithdrawn,
    SealedSignal,
    SignalAccepted,
    SubjectErasureApproved,
    SubjectShredded,
    Topics,
    WithdrawalReason,
)
from shared.policy import Policy
from shared.unit_of_work import InMemoryUnitOfWork
from tests.factories import accepted, worker

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

# A signal (subject, organisation, parents), a withdrawal of the n-th signal so far, or
# the erasure of a subject.
signal_spec = st.tuples(
    st.just("signal"),
    st.sampled_from(SUBJECTS),
    st.sampled_from(sorted(ORGS)),
    st.lists(st.sampled_from(PARENTS), max_size=2, unique=True),
)
withdrawal_spec = st.tuples(
    st.just("withdraw"), st.integers(0, 20), st.sampled_from(list(WithdrawalReason))
)
erasure_spec = st.tuples(st.just("erase"), st.sampled_from(SUBJECTS))
# Time passes: retention runs at each registration's own end (730 days active, then the
# archive), as the replay's clock does.
wait_spec = st.tuples(st.just("wait"), st.sampled_from([1, 400, 800, 3000]))
step_spec = st.one_of(
    signal_spec, signal_spec, signal_spec, withdrawal_spec, erasure_spec, wait_spec
)


class World:
    """The matching service on the in-memory repository, its published events kept."""

    def __init__(self) -> None:
        self.sealed: dict[uuid.UUID, SealedSignal] = {}

        async def opener(subject: str, aad: bytes, _: str) -> bytes:
            return self.sealed[uuid.UUID(bytes=aad)].model_dump_json().encode()

        self.keys = ReplayKeys(opener)
        self.matching = Matching(POLICY, self.keys, Topics())
        self.uow = InMemoryUnitOfWork(repeatable_repository())
        self.signals: list[SignalAccepted] = []

    def run(
        self, steps: list[tuple[object, ...]], order: list[int] | None = None
    ) -> list[Contract]:
        """Take the steps in `order` (their own by default); each keeps the id and the
        time of its place in `steps`."""
        return asyncio.run(self._run(steps, order or list(range(len(steps)))))

    async def _run(self, steps: list[tuple[object, ...]], order: list[int]) -> list[Contract]:
        waited = timedelta(0)
        for n in order:
            step = steps[n]
            if step[0] == "wait":
                waited += timedelta(days=int(step[1]))  # type: ignore[call-overload]
                until = START + waited + timedelta(minutes=n)
                while (due := await self.uow.repo.next_due()) is not None and due <= until:
                    await self.matching.end_due(self.uow, due)
                    await self.matching.shred_pending(self.uow)
                continue
            at = START + waited + timedelta(minutes=n)
            event_id = uuid.uuid5(uuid.NAMESPACE_OID, f"{n}")
            if step[0] == "signal":
                _, subject, org, parents = step
                signal = accepted(event_id, str(subject), str(org), ORGS[str(org)], at)
                self.sealed[event_id] = SealedSignal(
                    worker=worker(f"{org}-1"),
                    wijk="WK099901",
                    parents=list(parents),  # type: ignore[call-overload]
                )
                self.signals.append(signal)
                await self.matching.register(self.uow, signal, at)
            elif step[0] == "withdraw" and self.signals:
                _, index, reason = step
                target = self.signals[int(index) % len(self.signals)]  # type: ignore[call-overload]
                await self.matching.withdraw(
                    self.uow,
                    RegistrationWithdrawn(
                        event_id=event_id,
                        registration_id=target.signal_id,
                        subject=target.subject,
                        partner_id=target.partner_id,
                        reason=reason,  # type: ignore[arg-type]
                        withdrawn_at=at,
                    ),
                    at,
                )
            elif step[0] == "erase":
                await self.matching.erase(
                    self.uow,
                    SubjectErasureApproved(
                        event_id=event_id,
                        request_id=event_id,
                        subject=str(step[1]),
                        approved_by="po",
                        approved_at=at,
                    ),
                    at,
                )
            await self.matching.shred_pending(self.uow)
        return [e for _, e in self.uow.published]

    def live_matches(self) -> set[tuple[str, frozenset[uuid.UUID], frozenset[str]]]:
        """Each open match: its kind, the registrations that make it hold now (which must
        all have been told), and whose they are. Family matches are named by their
        members, not by the cluster's id, which depends on arrival order."""
        repo = self.uow.repo
        now = START + timedelta(days=1)
        live = set()
        for m in repo.matches.values():
            if m.status != "open":
                continue
            subjects = (
                [m.key]
                if m.kind is MatchKind.PERSON
                else [n[2:] for n, c in repo.nodes.items() if c == m.key and n[0] == "s"]
            )
            regs = asyncio.run(self._registrations(subjects))
            current = frozenset(r.registration_id for r in counted(regs, POLICY, now))
            assert current <= m.participants  # everyone who counts was told
            live.add((m.kind.value, current, frozenset(subjects)))
        return live

    async def _registrations(self, subjects: list[str]):  # type: ignore[no-untyped-def]
        return await self.matching.live(self.uow, subjects, START)


def interleaved(steps: list[tuple[object, ...]], rng) -> list[int]:  # type: ignore[no-untyped-def]
    """Another interleaving of the signals: each subject's own keep their order."""
    per_subject: dict[object, list[int]] = {}
    for n, step in enumerate(steps):
        per_subject.setdefault(step[1], []).append(n)
    queues = list(per_subject.values())
    shuffled = []
    while queues:
        queue = rng.choice(queues)
        shuffled.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    return shuffled


@settings(max_examples=120, deadline=None)
@given(st.lists(signal_spec, min_size=1, max_size=14), st.randoms(use_true_random=False))
def test_live_matches_do_not_depend_on_how_subjects_interleave(specs, rng) -> None:  # type: ignore[no-untyped-def]
    first, second = World(), World()
    first.run(specs)
    second.run(specs, interleaved(specs, rng))
    assert first.live_matches() == second.live_matches()


@settings(max_examples=120, deadline=None)
@given(st.lists(step_spec, min_size=1, max_size=20))
def test_what_is_told_about_a_match_adds_up(steps) -> None:  # type: ignore[no-untyped-def]
    """Over signals, withdrawals and erasures: a match is raised once, every event about
    it follows its raising and none follows its dissolution; what the events say takes
    part is what the repository holds; every raised match is one the rule allows; and an
    erased subject is in no open match and keeps nothing."""
    world = World()
    events = world.run(steps)
    told: dict[uuid.UUID, set[uuid.UUID]] = {}  # the participants as last told
    ever: dict[uuid.UUID, set[uuid.UUID]] = {}  # everyone ever told of as taking part
    closed: set[uuid.UUID] = set()
    for e in events:
        if isinstance(e, MatchRaised):
            assert e.match_id not in told and e.match_id not in closed
            assert len({p.organisation for p in e.participants}) >= 2
            told[e.match_id] = {p.registration_id for p in e.participants}
        elif isinstance(e, MatchJoined | MatchLeft | MatchDissolved):
            assert e.match_id in told and e.match_id not in closed
            if isinstance(e, MatchJoined):
                told[e.match_id] = {p.registration_id for p in e.participants}
            elif isinstance(e, MatchLeft):
                told[e.match_id] = set(e.remaining)
                assert not set(e.left) & told[e.match_id]
            else:
                closed.add(e.match_id)
        if isinstance(e, MatchRaised | MatchJoined):
            ever.setdefault(e.match_id, set()).update(told[e.match_id])
    repo = world.uow.repo
    for match_id, m in repo.matches.items():
        if m.status == "open":
            assert match_id in told and match_id not in closed
            # The repository keeps everyone it told of (one superseded by a newer
            # registration of its organisation too, so its end can be told): no one else.
            assert told[match_id] <= m.participants <= ever[match_id]
    for subject in {s[1] for s in steps if s[0] == "erase"}:
        last = max(n for n, s in enumerate(steps) if s[1] == subject)
        if steps[last][0] == "erase":  # not registered again since
            assert asyncio.run(repo.subject_is_gone(subject))
            assert asyncio.run(repo.family_root(subject)) is None
            assert not any(subject in m.key for m in repo.matches.values() if m.status == "open")
    shredded = [e for e in events if isinstance(e, SubjectShredded)]
    assert {e.subject for e in shredded} <= set(world.keys.shredded)


@settings(max_examples=60, deadline=None)
@given(st.lists(step_spec, min_size=1, max_size=16))
def test_running_a_stream_twice_gives_the_same_events(steps) -> None:  # type: ignore[no-untyped-def]
    def summary(events: list[Contract]) -> list[str]:
        # Event ids are random by design; everything else repeats.
        return [e.model_dump_json(exclude={"event_id", "shredded_at"}) for e in events]

    assert summary(World().run(steps)) == summary(World().run(steps))

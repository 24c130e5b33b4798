"""The replay for policy makers runs the service's own use cases: same input, same output
byte for byte; a policy change shows in the decisions; time is the events' own, and each
registration ends at its own moment; withdrawals, erasures, redeliveries, the age limit
and the archive notice behave as in the service; bad lines are all named, without
their content."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.matching.replay import read_events, replay, write_decisions
from shared.contracts import (
    Contract,
    OrganisationCategory,
    RegistrationWithdrawn,
    SealedSignal,
    SignalAccepted,
    SubjectErasureApproved,
    WithdrawalReason,
)
from shared.keystore import KeyShredded
from shared.policy import Policy
from tests.factories import accepted, pseudonym, worker

POLICY = """
version: {version}
municipality: Voorbeeldrade
authorised_categories: [jgz, onderwijs, huisarts]
coordinating_categories: [jgz, huisarts]
matching: {{min_organisations: {n}, same_organisation_counts: {same}}}
retention: {{active_days: 730, age_limit_years: {age}}}
"""
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CATEGORY = {
    "school": OrganisationCategory.ONDERWIJS,
    "jgz": OrganisationCategory.JGZ,
    "gp": OrganisationCategory.HUISARTS,
}
Sealed = dict[uuid.UUID, SealedSignal]


def policy(version: str = "v1", n: int = 2, same: bool = False, age: int = 23) -> str:
    return POLICY.format(version=version, n=n, same=str(same).lower(), age=age)


def event(
    subject: str,
    org: str,
    days: int,
    sealed: Sealed,
    turns_23: str = "2040-01",
    **links: object,
) -> SignalAccepted:
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{subject}/{org}/{days}")
    sealed[event_id] = SealedSignal(worker=worker(f"{org}-1"), wijk="WK099901", **links)  # type: ignore[arg-type]
    return accepted(
        event_id, subject, org, CATEGORY[org], START + timedelta(days=days), turns_23=turns_23
    )


def stream() -> tuple[list[SignalAccepted], Sealed]:
    sealed: Sealed = {}
    child, sibling, other = (pseudonym() for _ in range(3))
    parent = pseudonym()
    events = [
        event(child, "school", 0, sealed, parents=[parent]),
        event(child, "jgz", 3, sealed, parents=[parent]),
        event(sibling, "gp", 10, sealed, parents=[parent]),
        event(other, "school", 20, sealed),
        event(other, "jgz", 21, sealed),
        event(other, "gp", 22, sealed),
        event(pseudonym(), "gp", 900, sealed),  # two and a half years later
    ]
    return events, sealed


def run(
    rules: str,
    events: list[Any],
    sealed: Sealed,
    until: datetime | None = None,
    shredded: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    async def opener(subject: str, aad: bytes, _: str) -> bytes:
        if subject in shredded:
            raise KeyShredded(subject)
        return sealed[uuid.UUID(bytes=aad)].model_dump_json().encode()

    ordered = sorted(events, key=lambda e: (_time(e), str(e.event_id)))
    return asyncio.run(replay(Policy.parse(rules), ordered, opener, until))


def _time(e: Any) -> datetime:
    for name in ("registered_at", "withdrawn_at", "approved_at", "requested_at"):
        if hasattr(e, name):
            return getattr(e, name)  # type: ignore[no-any-return]
    raise AssertionError(e)


def line(e: Contract) -> str:
    if isinstance(e, SignalAccepted):
        return e.model_dump_json() + "\n"
    return (
        json.dumps({"event_type": type(e).__name__, "event": json.loads(e.model_dump_json())})
        + "\n"
    )


def test_the_same_input_gives_the_same_output_byte_for_byte(tmp_path: Path) -> None:
    events, sealed = stream()
    shuffled = events[:]
    random.Random(3).shuffle(shuffled)
    infile = tmp_path / "accepted.jsonl"
    infile.write_text("".join(line(e) for e in shuffled))
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.jsonl"
        write_decisions(out, run(policy(), read_events(infile), sealed))
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    decisions = [json.loads(line) for line in outputs[0].splitlines()]
    kinds = [(d["decision"], d.get("kind")) for d in decisions]
    assert ("raise", "person") in kinds
    assert ("raise", "family") in kinds
    assert ("join", "person") in kinds  # the third organisation joins the other child's match
    # Two years on, the registrations expire one by one: the three-organisation match
    # goes on without the first (leave), and every match dissolves in the end.
    assert ("leave", "person") in kinds
    assert sorted(k for k in kinds if k[0] == "dissolve") == [
        ("dissolve", "family"),
        ("dissolve", "person"),
        ("dissolve", "person"),
    ]
    # And five years after that, the archive goes: nothing of the subjects is kept.
    assert kinds.count(("forget", None)) == 4
    assert all(d["policy_version"] == "v1" for d in decisions if "kind" in d)


def test_a_policy_change_shows_in_the_decisions() -> None:
    events, sealed = stream()
    strict = run(policy("v2", n=3), events, sealed)
    raised = [(d["kind"]) for d in strict if d["decision"] == "raise"]
    assert raised == ["family", "person"]  # only the three-organisation cases remain


def test_a_registration_ends_at_its_own_moment_even_when_no_event_follows() -> None:
    sealed: Sealed = {}
    child = pseudonym()
    events = [event(child, "school", 0, sealed), event(child, "jgz", 5, sealed)]
    decisions = run(policy(), events, sealed, until=START + timedelta(days=3000))
    dissolved = [d for d in decisions if d["decision"] == "dissolve"]
    # The school's registration ends 730 days after it was made, to the second.
    assert [d["at"] for d in dissolved] == [(START + timedelta(days=730)).isoformat()]
    # Without an end, the replay runs on until nothing more is due; with one, it stops.
    assert not [
        d for d in run(policy(), events, sealed, until=START + timedelta(days=700))
        if d["decision"] == "dissolve"
    ]  # fmt: skip


def test_withdrawals_and_erasures_are_replayed_as_the_service_takes_them() -> None:
    sealed: Sealed = {}
    child, other = pseudonym(), pseudonym()
    school, jgz = event(child, "school", 0, sealed), event(child, "jgz", 1, sealed)
    events: list[Any] = [
        school,
        jgz,
        RegistrationWithdrawn(
            registration_id=school.signal_id,
            subject=child,
            partner_id="partner-school",
            reason=WithdrawalReason.UNJUSTIFIED,
            withdrawn_at=START + timedelta(days=2),
        ),
        event(other, "school", 3, sealed),
        event(other, "gp", 4, sealed),
        SubjectErasureApproved(
            request_id=uuid.uuid4(),
            subject=other,
            approved_by="privacy-officer",
            approved_at=START + timedelta(days=5),
        ),
    ]
    decisions = run(policy(), events, sealed, until=START + timedelta(days=6))
    steps = [(d["at"][:10], d["decision"]) for d in decisions]
    assert steps == [
        ("2026-01-06", "raise"),
        # Withdrawn as unjustified: the registration leaves at once, and the match no
        # longer holds.
        ("2026-01-07", "leave"),
        ("2026-01-07", "dissolve"),
        ("2026-01-09", "raise"),
        ("2026-01-10", "leave"),  # the subject erased as a whole
        ("2026-01-10", "dissolve"),
        ("2026-01-10", "forget"),
    ]


def test_an_erased_subject_is_not_counted() -> None:
    """A subject whose key the key store shredded is erased, not a registration of an
    unknown worker: it raises nothing."""
    sealed: Sealed = {}
    child = pseudonym()
    events = [event(child, "school", 0, sealed), event(child, "jgz", 1, sealed)]
    assert run(policy(), events, sealed, until=START, shredded=frozenset({child})) == []


def test_a_redelivered_event_counts_once() -> None:
    sealed: Sealed = {}
    child = pseudonym()
    first = event(child, "school", 0, sealed)
    events = [first, first, event(child, "school", 1, sealed)]
    decisions = run(policy(same=True), events, sealed, until=START + timedelta(days=2))
    raised = [d for d in decisions if d["decision"] == "raise"]
    assert len(raised) == 1 and len(raised[0]["registrations"]) == 2


def test_the_policy_age_limit_ends_registrations_and_refuses_the_over_age() -> None:
    sealed: Sealed = {}
    child, older, sibling = pseudonym(), pseudonym(), pseudonym()
    parent = pseudonym()
    # Turns 18 in 2027-03 (23 in 2032-03): under an age limit of 18 it ends there.
    events = [
        event(child, "school", 0, sealed, turns_23="2032-03"),
        event(child, "jgz", 1, sealed, turns_23="2032-03"),
        # Turned 18 before the registration: refused, and links no family.
        event(older, "gp", 2, sealed, turns_23="2030-01", parents=[parent]),
        event(sibling, "school", 3, sealed, parents=[parent]),
        event(sibling, "jgz", 4, sealed, parents=[parent]),
    ]
    decisions = run(policy(age=18), events, sealed, until=START + timedelta(days=500))
    assert {"decision": "refused", "reason": "over-age"}.items() <= decisions[1].items()
    assert not [d for d in decisions if d.get("kind") == "family"]
    ended = [d for d in decisions if d["decision"] == "dissolve"]
    assert [d["at"] for d in ended] == ["2027-03-01T00:00:00+00:00"]
    # Under the default of 23, the same registrations do not end before 2028.
    assert not [
        d for d in run(policy(), events[:2], sealed, until=START + timedelta(days=500))
        if d["decision"] == "dissolve"
    ]  # fmt: skip


def test_a_new_registration_gets_the_one_time_notice_of_the_archive() -> None:
    sealed: Sealed = {}
    child = pseudonym()
    events = [
        event(child, "school", 0, sealed),
        event(child, "jgz", 800, sealed),  # after the school's ended (archived)
        event(child, "gp", 801, sealed),
    ]
    decisions = run(policy(), events, sealed, until=START + timedelta(days=802))
    notices = [d for d in decisions if d["decision"] == "notice"]
    assert [n["registration"] for n in notices] == [str(events[1].signal_id)]


def test_the_replay_command_runs_without_the_key_store(tmp_path: Path) -> None:
    events, _ = stream()
    infile = tmp_path / "accepted.jsonl"
    infile.write_text("".join(line(e) for e in events))
    rules = tmp_path / "policy.yaml"
    rules.write_text(policy())
    out = tmp_path / "decisions.jsonl"
    command = [sys.executable, "-m", "vroegsignaal", "matching", "replay", "--policy", str(rules),
               "--output", str(out), "--no-keystore", "--until", "2026-03-01"]  # fmt: skip
    done = subprocess.run(
        [*command, "--input", str(infile)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    decisions = [json.loads(line) for line in out.read_text().splitlines()]
    assert {d["kind"] for d in decisions if "kind" in d} == {"person"}  # links are sealed
    # After the last event (day 900), nothing: --until lies before it.
    assert max(d["at"] for d in decisions) < (START + timedelta(days=900)).isoformat()
    bad = tmp_path / "bad.jsonl"
    secret_looking = "f" * 63 + "g"
    bad.write_text(
        '{"not": "an event"}\n'
        + line(events[0])
        + line(events[1]).replace(events[1].subject, secret_looking)
        + '{"event_type": "MatchRaised", "event": {}}\n'
        + "not json\n"
        + line(events[2]).replace('"subject"', f'"{secret_looking}": 1, "subject"')
    )
    failed = subprocess.run(
        [*command, "--input", str(bad)], capture_output=True, text=True, check=False
    )
    assert failed.returncode == 1
    # Every bad line, with the field and the reason, and never the content.
    assert "bad.jsonl:1: incomplete: SignalAccepted without event_id" in failed.stderr
    assert "bad.jsonl:3: invalid: SignalAccepted is invalid: subject:" in failed.stderr
    assert "bad.jsonl:4: unknown-event-type" in failed.stderr
    assert "bad.jsonl:5: malformed-json" in failed.stderr
    assert "bad.jsonl:6: invalid: SignalAccepted is invalid: (an unknown field)" in failed.stderr
    assert "bad.jsonl:2" not in failed.stderr
    assert secret_looking not in failed.stderr

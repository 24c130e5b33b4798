"""The replay for policy makers: same input, same output byte for byte; a policy change
shows in the decisions; time is the events' own."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.matching.replay import read_events, replay, write_decisions
from shared.contracts import OrganisationCategory, SealedSignal, SignalAccepted
from shared.policy import Policy
from tests.factories import pseudonym, worker

POLICY = """
version: {version}
municipality: Voorbeeldrade
authorised_categories: [jgz, onderwijs, huisarts]
coordinating_categories: [jgz, huisarts]
matching: {{min_organisations: {n}}}
"""
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CATEGORY = {
    "school": OrganisationCategory.ONDERWIJS,
    "jgz": OrganisationCategory.JGZ,
    "gp": OrganisationCategory.HUISARTS,
}


def event(
    subject: str, org: str, days: int, sealed: dict[uuid.UUID, SealedSignal], **links: object
) -> SignalAccepted:
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{subject}/{org}/{days}")
    sealed[event_id] = SealedSignal(worker=worker(f"{org}-1"), wijk="WK099901", **links)  # type: ignore[arg-type]
    return SignalAccepted(
        event_id=event_id,
        signal_id=event_id,
        partner_id=f"partner-{org}",
        subject=subject,
        organisation=org,
        organisation_category=CATEGORY[org],
        registered_at=START + timedelta(days=days),
        age_limit_month="2040-01",
        sealed="v1.AAAA",
    )


def stream() -> tuple[list[SignalAccepted], dict[uuid.UUID, SealedSignal]]:
    sealed: dict[uuid.UUID, SealedSignal] = {}
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
    policy: str, events: list[SignalAccepted], sealed: dict[uuid.UUID, SealedSignal]
) -> list[dict[str, object]]:
    async def opener(e: SignalAccepted) -> SealedSignal | None:
        return sealed[e.event_id]

    return asyncio.run(replay(Policy.parse(policy), events, opener))


def test_the_same_input_gives_the_same_output_byte_for_byte(tmp_path: Path) -> None:
    events, sealed = stream()
    shuffled = events[:]
    random.Random(3).shuffle(shuffled)
    infile = tmp_path / "accepted.jsonl"
    infile.write_text("".join(e.model_dump_json() + "\n" for e in shuffled))
    policy = POLICY.format(version="v1", n=2)
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.jsonl"
        write_decisions(out, run(policy, read_events(infile), sealed))
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    decisions = [json.loads(line) for line in outputs[0].splitlines()]
    kinds = [(d["decision"], d["kind"]) for d in decisions]
    assert ("raise", "person") in kinds
    assert ("raise", "family") in kinds
    assert ("join", "person") in kinds  # the third organisation joins the other child's match
    # Two and a half years on, the registrations have expired and the matches dissolve.
    assert sorted(k for k in kinds if k[0] == "dissolve") == [
        ("dissolve", "family"),
        ("dissolve", "person"),
        ("dissolve", "person"),
    ]
    assert all(d["policy_version"] == "v1" for d in decisions)


def test_a_policy_change_shows_in_the_decisions() -> None:
    events, sealed = stream()
    strict = run(POLICY.format(version="v2", n=3), events, sealed)
    raised = [(d["kind"]) for d in strict if d["decision"] == "raise"]
    assert raised == ["family", "person"]  # only the three-organisation cases remain


def test_the_replay_command_runs_without_the_key_store(tmp_path: Path) -> None:
    events, _ = stream()
    infile = tmp_path / "accepted.jsonl"
    infile.write_text("".join(e.model_dump_json() + "\n" for e in events))
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(version="v1", n=2))
    out = tmp_path / "decisions.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "vroegsignaal", "matching", "replay", "--policy", str(policy),
         "--input", str(infile), "--output", str(out), "--no-keystore"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    decisions = [json.loads(line) for line in out.read_text().splitlines()]
    assert {d["kind"] for d in decisions} == {"person"}  # family links are sealed
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"not": "an event"}\n')
    failed = subprocess.run(
        [sys.executable, "-m", "vroegsignaal", "matching", "replay", "--policy", str(policy),
         "--input", str(bad), "--output", str(out), "--no-keystore"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert failed.returncode == 1
    assert "bad.jsonl:1: not a SignalAccepted" in failed.stderr

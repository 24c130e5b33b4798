"""Replay for policy makers: the production use cases (usecases.py) run offline on the
in-memory repository over a file of the events matching consumes (signals, withdrawals,
erasures), in event-time order, writing every decision the service would publish.

The clock is the events' own: before each event, and after the last, it advances to each
expiry's and each archive period's own moment and runs retention there. Deterministic:
the same policy and input give the same output, byte for byte. Nothing is written to the
key store: sealed fields are opened through it (read only), and a key the replay shreds
is shredded only in the replay. Nothing opened is ever written out.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from services.matching.memory import InMemoryRepository
from services.matching.usecases import Matching, Refusal
from shared.contracts import Contract as Event
from shared.contracts import ContractError as _ContractError
from shared.contracts import (
    CoordinationTransferred,
    EarlierInvolvementNoticed,
    ErasureReviewRequested,
    MatchDissolved,
    MatchJoined,
    MatchLeft,
    MatchRaised,
    RegistrationWithdrawn,
    SealedSignal,
    SignalAccepted,
    SubjectErased,
    SubjectErasureApproved,
    SubjectShredded,
    Topics,
    WorkerContact,
    decode,
    parse_bounded,
)
from shared.keystore import SealBroken
from shared.policy import Policy
from shared.unit_of_work import InMemoryUnitOfWork

Replayed = (
    SignalAccepted
    | RegistrationWithdrawn
    | SubjectErased
    | SubjectErasureApproved
    | SubjectShredded
)
EVENT_TYPES: dict[str, type[Replayed]] = {
    t.__name__: t
    for t in (
        SignalAccepted,
        RegistrationWithdrawn,
        SubjectErased,
        SubjectErasureApproved,
        SubjectShredded,
    )
}
MAX_LINE_BYTES = 64 * 1024
Opener = Callable[[str, bytes, str], Awaitable[bytes]]

# Without the key store, every registration is of an unknown worker in one wijk and has
# no family links: only person matches are decided.
_UNOPENED = (
    SealedSignal(
        worker=WorkerContact(worker_id="-", display_name="-", email="unknown@invalid.example"),
        wijk="WK000000",
    )
    .model_dump_json()
    .encode()
)


class ReplayInputError(ValueError):
    """Lines of the input that are not events matching consumes: every one is named,
    with its line, the field and the reason, never with its content."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# The fields a line must carry itself: a default (now, a random id) would make the
# output depend on when the replay ran.
TIME_FIELD = {
    "SignalAccepted": "registered_at",
    "RegistrationWithdrawn": "withdrawn_at",
    "SubjectErased": "requested_at",
    "SubjectErasureApproved": "approved_at",
    "SubjectShredded": "shredded_at",
}


def event_time(event: Replayed) -> datetime:
    """When the event happened, by its own clock."""
    if isinstance(event, SignalAccepted):
        return event.registered_at
    if isinstance(event, RegistrationWithdrawn):
        return event.withdrawn_at
    if isinstance(event, SubjectErased):
        return event.requested_at
    if isinstance(event, SubjectErasureApproved):
        return event.approved_at
    return event.shredded_at


def parse_line(raw: bytes) -> Replayed:
    """A line as on the topic: a SignalAccepted object, or {"event_type": "<contract>",
    "event": {...}} for any event matching consumes (the type its header names)."""
    if len(raw) > MAX_LINE_BYTES:
        raise _ContractError(
            "oversized", f"the line is {len(raw)} bytes, the limit is {MAX_LINE_BYTES}"
        )
    data = parse_bounded(raw)
    model: type[Replayed] = SignalAccepted
    if isinstance(data, dict) and set(data) == {"event_type", "event"}:
        name = data["event_type"]
        found = EVENT_TYPES.get(name) if isinstance(name, str) else None
        if found is None:
            raise _ContractError(
                "unknown-event-type",
                f"event_type must be one of {', '.join(sorted(EVENT_TYPES))}",
            )
        model, data = found, data["event"]
    if isinstance(data, dict):
        missing = [f for f in ("event_id", TIME_FIELD[model.__name__]) if f not in data]
        if missing:
            raise _ContractError(
                "incomplete",
                f"{model.__name__} without {' and '.join(missing)}: the replay takes each "
                "event's own id and time, as on the topic",
            )
    return decode(model, json.dumps(data).encode(), max_bytes=MAX_LINE_BYTES)


def read_events(path: Path) -> list[Replayed]:
    """Every event of the file, sorted by event time; ReplayInputError naming every bad
    line if there is one."""
    events: list[Replayed] = []
    problems: list[str] = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                events.append(parse_line(line.strip()))
            except _ContractError as exc:
                problems.append(f"{path}:{number}: {exc.code}: {exc.reason}")
    if problems:
        raise ReplayInputError(problems)
    return sorted(events, key=lambda e: (event_time(e), str(e.event_id)))


class ReplayKeys:
    """The key store as the replay uses it: sealed fields open through `opener` (the
    real key store, read only: a key shredded there is an erased subject here too) or
    not at all; what the replay seals is a marker nothing can open; the keys the replay
    decides to shred are only listed. (Nothing of a subject is kept once its key is
    shredded, and what the subject's partners register later is sealed under a new one.)"""

    SEALED = "v1.cmVwbGF5"  # "replay"

    def __init__(self, opener: Opener | None) -> None:
        self.opener = opener
        self.shredded: set[str] = set()

    async def open_sealed(self, subject: str, aad: bytes, sealed: str) -> bytes:
        if self.opener is None:
            return _UNOPENED
        return await self.opener(subject, aad, sealed)

    async def seal(self, subject: str, aad: bytes, plaintext: bytes, *, create: bool) -> str:
        return self.SEALED

    async def shred(self, subject: str) -> bool:
        self.shredded.add(subject)
        return True


def repeatable_ids(stream: str) -> Callable[[], str]:
    """Ids of one kind (family clusters, family keys), the same in every run."""
    counter = itertools.count(1)
    return lambda: hashlib.sha256(f"replay/{stream}/{next(counter)}".encode()).hexdigest()


def repeatable_repository() -> InMemoryRepository:
    return InMemoryRepository(
        new_id=repeatable_ids("cluster"), new_key=repeatable_ids("family-key")
    )


def decision_records(at: datetime, published: list[tuple[str, Event]]) -> Iterator[dict[str, Any]]:
    """What the service published, as decisions: ids, rules and counts, never a
    pseudonym or anything sealed."""
    for _, e in published:
        record: dict[str, Any] = {"at": at.isoformat()}
        if isinstance(e, MatchRaised | MatchJoined | MatchLeft | MatchDissolved):
            record |= {
                "kind": e.kind.value,
                "match_id": str(e.match_id),
                "rule": e.rule,
                "policy_version": e.policy_version,
            }
        if isinstance(e, MatchRaised):
            record |= {
                "decision": "raise",
                "registrations": [str(p.registration_id) for p in e.participants],
            }
        elif isinstance(e, MatchJoined):
            record |= {
                "decision": "join",
                "registrations": [str(p.registration_id) for p in e.participants],
                "newcomers": [str(i) for i in e.newcomers],
            }
        elif isinstance(e, MatchLeft):
            record |= {
                "decision": "leave",
                "registrations": [str(i) for i in e.remaining],
                "left": [str(i) for i in e.left],
            }
        elif isinstance(e, MatchDissolved):
            record |= {
                "decision": "dissolve",
                "registrations": [str(i) for i in e.remaining],
                "reason": e.reason,
            }
        elif isinstance(e, CoordinationTransferred):
            record |= {
                "decision": "transfer",
                "kind": e.kind.value,
                "match_id": str(e.match_id),
                "rule": e.rule,
                "policy_version": e.policy_version,
                "coordination": "transferred",
            }
        elif isinstance(e, EarlierInvolvementNoticed):
            record |= {"decision": "notice", "registration": str(e.registration_id)}
        elif isinstance(e, SubjectShredded):
            # Not its reason: free text (who approved an erasure, an operator's words).
            record |= {"decision": "forget", "registrations": [str(i) for i in e.registrations]}
        elif isinstance(e, ErasureReviewRequested):
            record |= {
                "decision": "erasure-review",
                "ended": e.ended,
                "organisations_remaining": e.organisations_remaining,
            }
        else:
            continue  # audit entries and counts: not decisions
        yield record


async def replay(
    policy: Policy,
    events: list[Replayed],
    opener: Opener | None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Every decision over `events`, then retention up to `until` (None: until nothing
    more is due)."""
    keys = ReplayKeys(opener)
    matching = Matching(policy, keys, Topics())
    uow = InMemoryUnitOfWork(repeatable_repository())
    out: list[dict[str, Any]] = []

    async def run(at: datetime, step: Awaitable[object]) -> object:
        start = len(uow.published)
        result = await step
        await matching.shred_pending(uow)
        out.extend(decision_records(at, uow.published[start:]))
        return result

    async def advance(to: datetime | None) -> None:
        while (due := await uow.repo.next_due()) is not None and (to is None or due <= to):
            await run(due, matching.end_due(uow, due, limit=1_000_000))

    for event in events:
        at = event_time(event)
        await advance(at)
        if isinstance(event, SignalAccepted):
            try:
                outcome = await run(at, matching.register(uow, event, at))
                refused = outcome.code.value if isinstance(outcome, Refusal) else None
            except SealBroken:
                refused = "seal-broken"  # the service dead-letters it and goes on
            if refused is not None:
                out.append(
                    {
                        "at": at.isoformat(),
                        "decision": "refused",
                        "reason": refused,
                        "registration": str(event.signal_id),
                        "policy_version": policy.version,
                    }
                )
        elif isinstance(event, RegistrationWithdrawn):
            await run(at, matching.withdraw(uow, event, at))
        elif isinstance(event, SubjectErased):
            await run(at, matching.erase_for_partner(uow, event, at))
        else:
            if isinstance(event, SubjectShredded):
                await keys.shred(event.subject)
            await run(at, matching.erase(uow, event, at))
    await advance(until)
    return out


def write_decisions(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n")

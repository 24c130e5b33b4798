"""The partner producer's checks on each row of an export, and the BSN elfproef."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from datetime import date
from pathlib import Path

import pytest

from shared.i18n import use_language
from vroegsignaal.partner.bsn import is_valid_bsn, synthetic_bsns
from vroegsignaal.partner.producer import Pseudonyms, event_id
from vroegsignaal.partner.rows import RowError, SourceRow, read_rows, validate

TODAY = date(2026, 11, 23)
RNG = random.Random(7)
CHILD, PARENT = synthetic_bsns(2, RNG)


def row(**changes: str) -> dict[str, str]:
    base = {
        "child_bsn": CHILD,
        "parent_bsns": PARENT,
        "household_id": "HH-1",
        "date_of_birth": "2015-03-01",
        "age_limit_month": "",
        "category": "schoolverzuim",
        "wijk": "WK099901",
        "registered_at": "2026-11-20",
        "worker_id": "w-1",
        "worker_name": "Medewerker Een",
        "worker_email": "w-1@voorbeeldrade.example",
        "worker_phone": "",
    }
    return {**base, **changes}


def test_the_elfproef() -> None:
    assert is_valid_bsn("111222333")
    assert not is_valid_bsn("111222334")
    assert not is_valid_bsn("12345678")
    assert not is_valid_bsn("000000000")
    assert not is_valid_bsn("11122233a")


def test_synthetic_bsns_are_valid_and_from_the_test_block() -> None:
    for bsn in synthetic_bsns(50, random.Random(1)):
        assert is_valid_bsn(bsn)
        assert bsn.startswith("9999")


def test_a_good_row_gets_the_month_it_turns_23_not_a_day() -> None:
    good = validate(3, row(), today=TODAY)
    assert good.age_limit_month == "2038-03"
    assert "2038-03-01" not in repr(good) and "2015-03-01" not in repr(good)
    assert good.parent_bsns == (PARENT,)
    assert good.registered_at.tzinfo is not None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"child_bsn": "123456789"}, "child_bsn is geen geldig BSN"),
        ({"parent_bsns": "123"}, "een waarde in parent_bsns is geen geldig BSN"),
        ({"parent_bsns": CHILD}, "staat ook in parent_bsns"),
        ({"date_of_birth": "", "age_limit_month": ""}, "precies één van"),
        ({"date_of_birth": "", "age_limit_month": "2038-03-01"}, "geen maand"),
        ({"date_of_birth": "", "age_limit_month": "2038-13"}, "geen maand"),
        ({"date_of_birth": "2003-11-30"}, "wordt deze maand 23"),
        ({"date_of_birth": "2000-01-01"}, "of is al 23"),
        ({"date_of_birth": "2030-01-01"}, "date_of_birth ligt in de toekomst"),
        ({"date_of_birth": "01-03-2015"}, "geen datum"),
        ({"category": "gokken"}, "category is niet een van"),
        ({"wijk": "Centrum"}, "geen CBS-wijkcode"),
        ({"worker_email": "nobody"}, "geen e-mailadres"),
        ({"registered_at": "2027-01-01"}, "registered_at ligt in de toekomst"),
        ({"worker_name": ""}, "worker_name is leeg"),
    ],
)
def test_a_bad_row_is_rejected_with_a_reason_in_dutch_that_never_holds_the_bsn(
    changes: dict[str, str], reason: str
) -> None:
    with pytest.raises(RowError) as rejected:
        validate(3, row(**changes), today=TODAY)
    assert reason in str(rejected.value)
    assert CHILD not in str(rejected.value)
    assert PARENT not in str(rejected.value)


def test_csv_and_json_lines_are_read_with_line_numbers(tmp_path: Path) -> None:
    csv_file = tmp_path / "export.csv"
    header = ",".join(row())
    csv_file.write_text(header + "\n" + ",".join(row().values()) + "\n")
    assert [n for n, _ in read_rows(csv_file)] == [2]
    jsonl = tmp_path / "export.jsonl"
    jsonl.write_text('{"child_bsn": "1"}\n\nnot json\n')
    lines = list(read_rows(jsonl))
    assert [n for n, _ in lines] == [1, 3]
    assert "__error__" in lines[1][1]


KEY = bytes(range(32))


def test_the_event_id_is_stable_per_row_and_never_derived_from_the_bsn() -> None:
    good = validate(3, row(), today=TODAY)
    assert event_id(KEY, "p", good, "ab" * 32) == event_id(KEY, "p", good, "ab" * 32)
    assert event_id(KEY, "p", good, "ab" * 32) != event_id(KEY, "p", good, "cd" * 32)
    other = validate(4, row(category="pesten"), today=TODAY)
    assert event_id(KEY, "p", good, "ab" * 32) != event_id(KEY, "p", other, "ab" * 32)


def test_the_event_id_cannot_be_computed_from_the_pseudonym_and_theme_without_the_key() -> None:
    """Someone who can make a partner pseudonym (a pseudonymiser credential) and reads ids
    downstream must not be able to test guesses of the theme: the id is keyed."""
    good = validate(3, row(), today=TODAY)
    child = "ab" * 32
    mine = event_id(KEY, "p", good, child)
    assert event_id(bytes(32), "p", good, child) != mine
    # The first version's unkeyed derivation, as an attacker would recompute it.
    unkeyed = uuid.uuid5(
        uuid.UUID("9d1c0a57-6b8e-4f3e-a2f4-1e5c7b0d3a92"),
        "|".join(("p", child, good.registered_at.isoformat(), good.category.value,
                  good.worker.worker_id, good.wijk)),
    )  # fmt: skip
    assert mine != unkeyed


async def test_a_file_sent_again_after_a_crash_sends_only_what_was_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal beside the export: batches Kafka acknowledged are recorded; a run that
    dies mid-file leaves them there, and the next run sends the rest only."""
    from vroegsignaal.partner.producer import Journal, PartnerProducer, Summary

    children = synthetic_bsns(7, random.Random(3))
    rows = [
        {
            "child_bsn": bsn,
            "date_of_birth": "2016-05-04",
            "category": "pesten",
            "wijk": "WK099903",
            "registered_at": f"2026-11-2{n % 3}T10:00:00+00:00",
            "worker_id": "juf-anouk",
            "worker_name": "Anouk",
            "worker_email": "juf-anouk@voorbeeldrade.example",
        }
        for n, bsn in enumerate(children)
    ]
    export = tmp_path / "export.jsonl"
    export.write_text("".join(json.dumps(r) + "\n" for r in rows))
    producer = PartnerProducer.__new__(PartnerProducer)
    producer._config = type(  # type: ignore[assignment]
        "C", (), {"batch_size": 3, "receipts_file": tmp_path / "receipts.csv"}
    )()
    producer._id_key = b"k" * 32
    sent: list[str] = []
    batches = 0

    async def pseudonymise_rows(batch: list[SourceRow]) -> list[Pseudonyms]:
        return [Pseudonyms(child=f"p-{r.line}", parents=[], household=None) for r in batch]

    async def publish_rows(
        batch: list[SourceRow], named: list[Pseudonyms], summary: Summary
    ) -> list[tuple[SourceRow, uuid.UUID]]:
        nonlocal batches
        batches += 1
        assert [n.child for n in named] == [f"p-{r.line}" for r in batch]
        if batches == 3:
            raise ConnectionError("the broker went away")
        sent.extend(r.child_bsn for r in batch)
        summary.sent += len(batch)
        return [(r, uuid.uuid4()) for r in batch]

    monkeypatch.setattr(producer, "pseudonymise_rows", pseudonymise_rows)
    monkeypatch.setattr(producer, "publish_rows", publish_rows)
    journal = Journal(tmp_path / "export.jsonl.sent", b"k" * 32)
    with pytest.raises(ConnectionError):
        await producer.send_file(export, today=date(2026, 11, 23), journal=journal)
    assert sent == children[:6]
    again = await producer.send_file(
        export, today=date(2026, 11, 23), journal=Journal(journal.path, b"k" * 32)
    )
    assert (again.sent, again.already_sent) == (1, 6)
    assert sent == children
    assert not any(bsn in journal.path.read_text() for bsn in children)


async def test_a_batch_is_pseudonymised_while_the_one_before_is_on_its_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pseudonymiser and Kafka work at once: the next batch is pseudonymised while
    the batch before waits for Kafka; the journal still records batches in file order,
    each only once Kafka acknowledged it."""
    from vroegsignaal.partner.producer import Journal, PartnerProducer, Summary

    export = _export(tmp_path / "export.jsonl", 6)
    producer = PartnerProducer.__new__(PartnerProducer)
    producer._config = type(  # type: ignore[assignment]
        "C", (), {"batch_size": 2, "receipts_file": tmp_path / "receipts.csv"}
    )()
    producer._id_key = b"k" * 32
    journal = Journal(tmp_path / "export.jsonl.sent", b"k" * 32)
    steps: list[str] = []
    next_asked = asyncio.Event()

    async def pseudonymise_rows(batch: list[SourceRow]) -> list[Pseudonyms]:
        steps.append(f"pseudonymise {batch[0].line}")
        if batch[0].line > 1:
            next_asked.set()
        return [Pseudonyms(child=f"p-{r.line}", parents=[], household=None) for r in batch]

    async def publish_rows(
        batch: list[SourceRow], named: list[Pseudonyms], summary: Summary
    ) -> list[tuple[SourceRow, uuid.UUID]]:
        if batch[0].line == 1:
            # Kafka acknowledges the first batch only once the second is being named:
            # a producer that waits for one before the other never gets here.
            await asyncio.wait_for(next_asked.wait(), timeout=5)
        steps.append(f"acknowledged {batch[0].line}")
        summary.sent += len(batch)
        return [(r, uuid.uuid4()) for r in batch]

    monkeypatch.setattr(producer, "pseudonymise_rows", pseudonymise_rows)
    monkeypatch.setattr(producer, "publish_rows", publish_rows)
    summary = await producer.send_file(export, today=date(2026, 11, 23), journal=journal)
    assert summary.sent == 6
    assert steps.index("pseudonymise 3") < steps.index("acknowledged 1")
    assert [s for s in steps if s.startswith("acknowledged")] == [
        "acknowledged 1", "acknowledged 3", "acknowledged 5"
    ]  # fmt: skip
    recorded = journal.path.read_text().split()
    assert recorded == [journal.digest(r) for r in _validated(export)]


def _validated(export: Path) -> list[SourceRow]:
    return [validate(line, raw, today=date(2026, 11, 23)) for line, raw in read_rows(export)]


def test_a_reference_is_the_partners_own_case_number_and_never_a_bsn() -> None:
    assert validate(2, row(reference=" LLN-2026-017 "), today=TODAY).reference == "LLN-2026-017"
    assert validate(2, row(reference=""), today=TODAY).reference is None
    for bad, why in (  # in English, on request
        (CHILD, "reference holds a number that passes the elfproef"),
        (f"{CHILD[:3]} {CHILD[3:6]}.{CHILD[6:]}", "reference holds a number that passes"),
        (f"BSN {CHILD}/1", "reference holds a number that passes the elfproef"),
        # Split by letters, no run of it is a BSN; the row's own BSN is still found in it.
        (f"D{PARENT[:4]}X{PARENT[4:]}", "reference holds this row's child_bsn or a parent_bsns"),
        (f"dossier-{PARENT}0", "reference holds a number that passes the elfproef"),
        ("geb. 12-05-2015", "reference holds a date, perhaps a date of birth"),
        ("x" * 65, "reference is longer than 64 characters"),
        ("LLN\u200b2026", "reference holds control or invisible characters"),
    ):
        with use_language("en"), pytest.raises(RowError, match=why) as raised:
            validate(2, row(reference=bad), today=TODAY)
        assert CHILD not in str(raised.value)


def test_a_reference_goes_in_a_version_3_signal_and_a_version_2_one_still_reads() -> None:
    from shared.contracts import SignalRegistered, decode

    old = {
        "schema_version": 2,
        "event_id": str(uuid.uuid4()),
        "partner_id": "school",
        "subject": "a" * 64,
        "organisation": "Basisschool",
        "worker": {"worker_id": "w", "display_name": "W", "email": "w@x.example"},
        "category": "pesten",
        "wijk": "WK099901",
        "registered_at": "2026-11-20T12:00:00+00:00",
        "age_limit_month": "2036-03",
    }
    upgraded = decode(SignalRegistered, json.dumps(old).encode(), max_bytes=10_000)
    assert (upgraded.schema_version, upgraded.reference) == (3, None)
    carrying_a_bsn = {**old, "schema_version": 3, "reference": CHILD}
    with pytest.raises(ValueError, match="reference") as raised:
        decode(SignalRegistered, json.dumps(carrying_a_bsn).encode(), max_bytes=10_000)
    assert CHILD not in str(raised.value)


def test_receipts_answer_which_row_a_registration_was_and_hold_no_bsn(tmp_path: Path) -> None:
    from vroegsignaal.partner.producer import Receipts

    receipts = Receipts(tmp_path / "school.receipts.csv", b"k" * 32)
    first = validate(2, row(reference="LLN-1"), today=TODAY)
    second = validate(3, row(worker_id="w-2"), today=TODAY)
    numbers = [uuid.uuid4(), uuid.uuid4()]
    receipts.record("export.csv", [(first, numbers[0])])
    receipts.record("export.csv", [(second, numbers[1])])
    (found,) = receipts.find(numbers[1])
    assert (found["export"], found["line"], found["reference"]) == ("export.csv", "3", "")
    assert receipts.find(numbers[0])[0]["reference"] == "LLN-1"
    assert receipts.find(uuid.uuid4()) == []
    text = (tmp_path / "school.receipts.csv").read_text()
    assert CHILD not in text and PARENT not in text
    assert (tmp_path / "school.receipts.csv").stat().st_mode & 0o077 == 0  # its owner's only
    assert text.count("registration,export,line") == 1


def test_a_signal_without_a_reference_still_goes_as_version_2() -> None:
    """A partner may update its producer before the municipality updates intake."""
    from shared.contracts import SignalRegistered, decode
    from tests.factories import pseudonym, signal

    plain = signal("school-de-regenboog", pseudonym())
    sent = json.loads(plain.to_bytes())
    assert sent["schema_version"] == 2 and "reference" not in sent
    assert decode(SignalRegistered, plain.to_bytes(), max_bytes=10_000) == plain
    referenced = plain.model_copy(update={"reference": "LLN-1"})
    assert json.loads(referenced.to_bytes())["schema_version"] == 3
    assert decode(SignalRegistered, referenced.to_bytes(), max_bytes=10_000) == referenced


def test_a_journal_torn_by_a_crash_is_read_and_written_on(tmp_path: Path) -> None:
    """A crash mid-write leaves half a line: the next run reads the whole lines, sends the
    torn row again (intake knows it by its event id) and starts its own lines apart."""
    from vroegsignaal.partner.producer import Journal

    rows = _validated_rows(tmp_path, 3)
    path = tmp_path / "export.jsonl.sent"
    first = Journal(path, b"k" * 32)
    first.record(rows[:2])
    path.write_text(path.read_text() + first.digest(rows[2])[:13])  # torn mid-line
    again = Journal(path, b"k" * 32)
    assert rows[0] in again and rows[1] in again and rows[2] not in again
    again.record(rows[2:])
    assert rows[2] in Journal(path, b"k" * 32)
    # A row recorded in this run is not "sent by an earlier run".
    assert rows[2] not in again


def _validated_rows(tmp_path: Path, n: int) -> list[SourceRow]:
    return _validated(_export(tmp_path / "rows.jsonl", n))


def _export(path: Path, n: int) -> Path:
    """An export of `n` valid rows, each its own synthetic child."""
    path.write_text(
        "".join(
            json.dumps(
                {
                    "child_bsn": bsn, "date_of_birth": "2016-05-04", "category": "pesten",
                    "wijk": "WK099903", "registered_at": "2026-11-20T10:00:00+00:00",
                    "worker_id": "juf-anouk", "worker_name": "Anouk",
                    "worker_email": "juf-anouk@voorbeeldrade.example",
                }
            ) + "\n"
            for bsn in synthetic_bsns(n, random.Random(n))
        )
    )  # fmt: skip
    return path


def test_a_month_more_than_23_years_ahead_is_of_no_youth_born_yet() -> None:
    ahead = f"{TODAY.year + 23}-{TODAY.month:02d}"
    assert validate(2, row(date_of_birth="", age_limit_month=ahead), today=TODAY)
    later = f"{TODAY.year + 24}-01"
    with use_language("en"), pytest.raises(RowError, match="more than 23 years ahead"):
        validate(2, row(date_of_birth="", age_limit_month=later), today=TODAY)

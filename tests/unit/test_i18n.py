"""The message catalogue of the command line and the printable report: every message
in the source is translated to Dutch with the same placeholders, Dutch is the default,
English is there on request, and dates read as in the Netherlands."""

from __future__ import annotations

import contextvars
import re
import string
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from typer.testing import CliRunner, Result

from shared import i18n
from shared.i18n import UnknownLanguage, _, language_of, moment, use_language

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("vroegsignaal", "services", "shared")  # the Makefile's `catalogue` MESSAGES


def _in_source() -> set[str | tuple[str, ...]]:
    found: set[str | tuple[str, ...]] = set()
    for directory in SOURCES:
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / directory,
            method_map=[("**.py", "python")],
            keywords={"_": None, "N_": None, "ngettext": (1, 2)},
        ):
            assert all(message), f"{_file}:{_line}: literal messages only"
            found.add(message)
    return found


def test_no_message_hides_inside_an_f_string_where_extraction_cannot_see_it() -> None:
    hidden = re.compile(r"""\bf(["']).*?\b_\(\s*["']""")
    for directory in SOURCES:
        for path in (ROOT / directory).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                assert not hidden.search(line), f"{path}:{number}: move _(...) out of the f-string"


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_every_message_in_the_source_has_a_checked_dutch_translation() -> None:
    with i18n.catalogue_path("nl").open("rb") as handle:
        catalogue = read_po(handle)
    entries = {m.id: m for m in catalogue if m.id}
    in_source = _in_source()
    assert len(in_source) > 100  # the partner command line and the report, at least
    missing = sorted(in_source - entries.keys())
    assert not missing, f"not in the catalogue (run `make catalogue`, translate): {missing}"
    stale = sorted(entries.keys() - in_source)
    assert not stale, f"in the catalogue but no longer in the source: {stale}"
    for message in entries.values():
        sources = message.id if isinstance(message.id, tuple) else (message.id,)
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(forms), f"no Dutch for {message.id!r}"
        assert not message.fuzzy, f"an unchecked (fuzzy) translation of {message.id!r}"
        for form in forms:
            assert _placeholders(str(form)) == _placeholders(str(sources[-1])), message.id


@pytest.fixture(autouse=True)
def _no_language_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(i18n.ENVIRONMENT, raising=False)


def test_dutch_by_default_english_on_request_and_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _("{field} is empty").format(field="wijk") == "wijk is leeg"
    with use_language("en"):
        assert _("{field} is empty").format(field="wijk") == "wijk is empty"
    monkeypatch.setenv(i18n.ENVIRONMENT, "en_GB.UTF-8")
    assert _("(none)") == "(none)"
    monkeypatch.setenv(i18n.ENVIRONMENT, "klingon")  # unusable: Dutch, not a crash
    assert _("(none)") == "(geen)"


def test_a_language_is_read_leniently_and_an_unknown_one_is_named() -> None:
    assert [language_of(v) for v in ("", None, "NL", "nl-NL", "en_US.UTF-8")] == [
        "nl", "nl", "nl", "nl", "en",
    ]  # fmt: skip
    with pytest.raises(UnknownLanguage, match=r"'fr'.*nl, en.*VS_LANGUAGE"):
        language_of("fr")


def test_moments_are_amsterdam_time_in_the_languages_own_format() -> None:
    winter = datetime(2026, 12, 2, 13, 5, tzinfo=UTC)  # CET, UTC+1
    summer = datetime(2026, 7, 1, 22, 30, tzinfo=UTC)  # CEST, UTC+2: the next day
    assert moment(winter, "nl") == "2 december 2026 14:05"
    assert moment(summer, "nl") == "2 juli 2026 00:30"
    assert moment(winter, "en") == "2 December 2026 14:05"


def test_the_partner_command_line_speaks_dutch_and_english_on_request(tmp_path: Path) -> None:
    from vroegsignaal.cli import app

    def invoke(*args: str) -> Result:
        # A command chooses its language for the rest of its process: here, its own context.
        return contextvars.copy_context().run(CliRunner().invoke, app, list(args))

    missing = tmp_path / "nowhere.yaml"
    dutch = invoke("partner", "lookup", "not-a-number", "--config", str(missing))
    assert dutch.exit_code == 1
    assert "fout: 'not-a-number' is geen registratienummer" in dutch.output
    english = invoke(
        "partner", "--language", "en", "lookup", "not-a-number", "--config", str(missing)
    )
    assert "error: 'not-a-number' is not a registration number" in english.output
    unknown = invoke("partner", "--language", "fr", "keygen")
    assert unknown.exit_code == 1
    assert "onbekende taal 'fr': kies een van nl, en" in unknown.output
    assert "signing_key" not in unknown.output


def test_the_printable_access_report_is_dutch_unless_asked_and_escapes_every_value() -> None:
    from services.audit.report import report_html

    report = {
        "request_id": "8d6f0c1e-0000-4000-8000-000000000001",
        "generated_at": "2026-12-02T13:05:00+00:00",
        "log_entries": 3,
        "registrations": [
            {"organisation": "<b>School</b>", "registered_at": "2026-11-30T08:00:00+00:00"}
        ],
        "matches": [
            {
                "match_id": "m-1",
                "raised_at": "2026-11-30T09:00:00+00:00",
                "ended_at": None,
                "kind": "family",
            },
        ],
        "workers_told": [],
        "deliveries": [],
        "accesses": [
            {
                "who": "fg-jan",
                "role": "privacy_officer",
                "organisation": "Gemeente",
                "action": "read",
                "what": "case",
                "when": "2026-12-01T10:00:00+00:00",
                "system": "notification",
            },
        ],
    }
    dutch = report_html(report)
    assert "<html lang=nl>" in dutch
    assert "<h1>Inzagerapport van een betrokkene</h1>" in dutch
    assert "opgesteld 2 december 2026 14:05, uit 3 regels van het auditlog" in dutch
    assert "<th scope=col>Geregistreerd</th>" in dutch
    assert "<td>30 november 2026 09:00</td>" in dutch
    assert "<td>gezin</td>" in dutch and "<td>-</td>" in dutch  # a family match, not ended
    assert "<td>functionaris gegevensbescherming</td><td>Gemeente</td><td>ingezien</td>" in dutch
    assert "<td>Geen.</td>" not in dutch and "<p>Geen.</p>" in dutch  # nobody told yet
    assert "&lt;b&gt;School&lt;/b&gt;" in dutch and "<b>School" not in dutch
    english = report_html(report, "en")
    assert "<h1>Access report of a data subject</h1>" in english
    assert "<td>30 November 2026 09:00</td>" in english
    assert "<td>privacy officer</td><td>Gemeente</td><td>read</td>" in english


def test_the_access_report_counts_a_line_on_an_overview_as_being_told() -> None:
    from services.audit.report import subject_report
    from shared.contracts import AuditAction, AuditActor, AuditEvent, AuditOutcome

    told = AuditEvent(
        action=AuditAction.NOTIFY,
        outcome=AuditOutcome.SUCCESS,
        actor=AuditActor(actor_id="notification", role="service"),
        on_behalf_of="teamlead-noord",
        subjects=["ab" * 32],
        object_type="overdue",
        source_system="notification",
        source_instance="n-1",
        purpose="notification: alert x was not acknowledged in time",
    )
    report = subject_report(uuid.uuid4(), [told], datetime.now(UTC))
    assert [t["worker"] for t in report["workers_told"]] == ["teamlead-noord"]

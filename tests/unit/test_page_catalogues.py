"""The pages' message catalogues: Dutch and English hold the same messages with the same
placeholders, and every message a page asks for (in its script, its HTML, or built from
the values the services send: kinds, states, occasions, addressees, alert messages)
exists in both."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from services.notification.domain import _KEYS
from shared.contracts import AuditAction, Category, MatchKind, WithdrawalReason

REPO = Path(__file__).resolve().parents[2]
DESK_APP = (REPO / "vroegsignaal" / "partner" / "desk" / "app.py").read_text()
# Every refusal code of the desk (`Refused(status, "code", ...)`): the page says each in
# the worker's language.
DESK_REFUSALS = set(re.findall(r"\(\s*\d{3},\s*\"([a-z-]+)\"", DESK_APP))
PAGES = {
    "inbox": REPO / "services" / "notification" / "web",
    "audit": REPO / "services" / "audit" / "web",
    "desk": REPO / "vroegsignaal" / "partner" / "desk" / "web",
}
CALLED = re.compile(r"(?<![\w.])(t|count)\(\s*\"([a-z][a-z0-9.\- ]*)\"")
MARKED = re.compile(r"data-i18n(?:-[a-z]+)?=\"([^\"]+)\"")
PLACEHOLDER = re.compile(r"\{(\w+)\}")
OCCASIONS = (
    "raised", "joined", "transferred", "reassigned", "dissolved", "earlier", "escalation",
)  # fmt: skip
# Keys a page builds from what the services send (`t(\`kind.${c.kind}\`)`).
BUILT = {
    "inbox": {
        *(f"kind.{k.value}" for k in MatchKind),
        *(f"state.{s}" for s in ("open", "closed")),
        *(f"filter.{f}" for f in ("open", "waiting", "closed")),
        *(f"occasion.{o}" for o in OCCASIONS),
        *(f"addressee.{a}" for a in ("parents", "youth and parents", "youth")),
        *_KEYS.values(),
        "language.other",
    },
    "audit": {
        *(f"action.{a.value}" for a in AuditAction),
        *(f"verification.{s}" for s in ("intact", "problems", "running", "interrupted")),
        "language.other",
    },
    "desk": {
        *(f"category.{c.value}" for c in Category),
        *(f"bsn.{s}" for s in ("incomplete", "invalid", "valid")),
        *(f"withdrawn.{r.value}" for r in WithdrawalReason),
        *(f"reason.{r.value}" for r in WithdrawalReason),
        *(f"case.{s}" for s in ("open", "closed")),
        *(f"error.{code}" for code in DESK_REFUSALS),
        "language.other",
    },
}


def catalogue(page: str, language: str) -> dict[str, str]:
    loaded: dict[str, str] = json.loads((PAGES[page] / "i18n" / f"{language}.json").read_text())
    return loaded


@pytest.mark.parametrize("page", sorted(PAGES))
def test_dutch_and_english_hold_the_same_messages_with_the_same_placeholders(page: str) -> None:
    nl, en = catalogue(page, "nl"), catalogue(page, "en")
    assert sorted(nl) == sorted(en)
    for key in nl:
        assert sorted(PLACEHOLDER.findall(nl[key])) == sorted(PLACEHOLDER.findall(en[key])), key
        assert nl[key].strip(), key


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_message_a_page_asks_for_is_in_its_catalogue(page: str) -> None:
    script = (PAGES[page] / "app.js").read_text()
    html = (PAGES[page] / "index.html").read_text()
    asked = set()
    for function, key in CALLED.findall(script):
        asked |= {f"{key}.one", f"{key}.other"} if function == "count" else {key}
    asked |= set(MARKED.findall(html)) | BUILT[page]
    assert asked, "no message found: the pattern no longer matches the pages"
    for language in ("nl", "en"):
        missing = sorted(asked - set(catalogue(page, language)))
        assert not missing, f"{page} ({language}) lacks {missing}"


def test_the_pages_are_dutch_unless_asked_otherwise() -> None:
    for folder in PAGES.values():
        assert '<html lang="nl">' in (folder / "index.html").read_text()
    library = (REPO / "shared" / "static" / "i18n.js").read_text()
    assert 'language = LANGUAGES.includes(kept) ? kept : "nl";' in library
    assert 'timeZone: "Europe/Amsterdam"' in library

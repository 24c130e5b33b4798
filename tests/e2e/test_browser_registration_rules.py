"""The registration form's rules in a real browser (shared/static/bsn.js) against the
partner producer's own: the elfproef, and the month a youth turns 23 in place of the date
of birth, for many inputs at once."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from services.pseudonymiser.domain import KeyRing
from shared.contracts import holds_bsn, holds_date, is_valid_bsn, month_of
from tests.e2e.test_browser_voprf import serving
from tests.e2e.test_inbox_browser import chromium
from vroegsignaal.partner.bsn import synthetic_bsns
from vroegsignaal.partner.rows import AGE_LIMIT

pytestmark = pytest.mark.e2e

RUN = """async ([bsns, typed, births, today, references]) => {
  const r = await import("/lib/bsn.js");
  return { valid: bsns.map(r.isValidBsn), states: typed.map(r.bsnState),
           bsnIn: references.map(r.holdsBsn), dateIn: references.map(r.holdsDate),
           months: births.map(r.ageLimitMonth),
           registrable: births.map((b) => r.registrable(r.ageLimitMonth(b), today)) };
}"""


SEPARATORS = ["", " ", ".", "-", "/", ",", "_", "\u2009", "\u00a0", "·"]
# Digits of other scripts: full-width, Arabic-Indic, Devanagari; and digits that are no
# decimal digit (circled, dingbat, Ethiopic), which the rule refuses outright.
ZEROS = [0x30, 0xFF10, 0x660, 0x966]
ODD = ["\u2460", "\u2776", "\u136a", "\u00b2"]
MONTH_NAMES = ["jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec"]


def references(rng: random.Random, births: list[str]) -> list[str]:
    """Case numbers as workers write them: plain ones, ones with a BSN split any way or in
    other digits, and ones with a day in many notations."""
    made = []
    for bsn in synthetic_bsns(150, rng):
        cut = sorted(rng.sample(range(1, 9), 2))
        parts = [bsn[: cut[0]], bsn[cut[0] : cut[1]], bsn[cut[1] :]]
        zero = rng.choice(ZEROS)
        parts = ["".join(chr(zero + int(d)) for d in p) for p in parts]
        made.append(rng.choice(["", "dossier ", "BSN:", "x"]) + rng.choice(SEPARATORS).join(parts))
        made.append(f"{rng.randrange(10)}{bsn}{rng.randrange(10)}")  # within a longer run
    for born in births[:150]:
        y, m, d = born.split("-")
        sep = rng.choice(["-", "/", ".", " "])
        made.append(
            rng.choice(
                [f"{y}{sep}{m}{sep}{d}", f"{d}{sep}{m}{sep}{y}",
                 f"{int(d)}{sep}{int(m)}{sep}{y[2:]}", f"{y}{m}{d}", f"{d}{m}{y}",
                 f"geb. {d}-{m}-{y}", f"{d}{m}{y[2:]}", f"{y[2:]}{m}{d}",
                 f"{int(d)} {MONTH_NAMES[int(m) - 1]} {y}",
                 f"{d}-{MONTH_NAMES[int(m) - 1]}-{y[2:]}"]
            )
        )  # fmt: skip
    for odd in ODD:
        made.append(f"LLN-{odd}7")
    for _ in range(300):
        made.append(
            rng.choice(["LLN-", "DOS ", "zaak/", "", "HV"])
            + "".join(rng.choice("0123456789-/. ABC") for _ in range(rng.randrange(1, 14)))
        )
    return made


async def test_the_forms_rules_are_the_partner_producers() -> None:
    rng = random.Random(9497)
    bsns = (
        [f"{rng.randrange(10**9):09d}" for _ in range(3000)]
        + synthetic_bsns(200, rng)
        + ["000000000", "12345678", "1234567890", "12345678a", "", "111222333"]
    )
    typed = ["", "9999", "999 99", "abc", "1234567890", "999.999.999", synthetic_bsns(1, rng)[0]]
    today = date(2026, 12, 2)
    births = [(today - timedelta(days=rng.randrange(40 * 365))).isoformat() for _ in range(300)] + [
        "2004-02-29",
        "2003-12-31",
        "2004-01-01",
        "2003-11-30",
    ]

    written = references(rng, births)

    async with serving(KeyRing.from_seeds({"k1": bytes(32)}, "k1"), []) as url, chromium() as b:
        page = await b.new_page()
        await page.goto(url)
        got = await page.evaluate(RUN, [bsns, typed, births, today.isoformat(), written])

    assert got["valid"] == [is_valid_bsn(bsn) for bsn in bsns]
    assert sum(got["valid"]) >= 200  # the synthetic ones, at least
    expected_months = [
        month_of(date(date.fromisoformat(b).year + AGE_LIMIT, date.fromisoformat(b).month, 1))
        for b in births
    ]
    assert got["months"] == expected_months
    assert got["registrable"] == [m > month_of(today) for m in expected_months]
    # A case number that holds a BSN or a day, as the producer and intake refuse it.
    assert got["bsnIn"] == [holds_bsn(r) for r in written]
    assert got["dateIn"] == [holds_date(r) for r in written]
    assert 0.2 < sum(got["bsnIn"]) / len(written) < 0.8
    assert 0.2 < sum(got["dateIn"]) / len(written) < 0.8
    nines = "valid" if is_valid_bsn("999999999") else "invalid"
    assert got["states"] == ["", "incomplete", "incomplete", "invalid", "invalid", nines, "valid"]

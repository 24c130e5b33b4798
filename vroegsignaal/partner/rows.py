"""A partner's export, row by row: read (CSV or JSON Lines) and validated.

Rules a partner admin will meet, with reasons they can act on. A rejected row never
carries its BSN into the reason: the line number identifies it in their own file.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from shared.contracts import NOT_TEXT, Category, PartnerReference, WorkerContact, month_of
from shared.i18n import _
from vroegsignaal.partner.bsn import is_valid_bsn

WIJK = re.compile(r"^WK\d{6}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,}$")
AGE_LIMIT = 23
COLUMNS = (
    "child_bsn, parent_bsns (';'-separated, optional), household_id (optional), "
    "date_of_birth or age_limit_month (YYYY-MM), category, wijk, registered_at, worker_id, "
    "worker_name, worker_email, worker_phone (optional), reference (optional: your own case "
    "or dossier number, shown only to your organisation's workers)"
)


@dataclass(frozen=True)
class SourceRow:
    """One validated row. Holds BSNs: it never leaves the partner's process."""

    line: int
    child_bsn: str
    parent_bsns: tuple[str, ...]
    household_id: str | None
    age_limit_month: str  # the month the youth turns 23: the only trace of the birth date
    category: Category
    wijk: str
    registered_at: datetime
    worker: WorkerContact
    reference: str | None = None  # the partner's own case or dossier number


@dataclass(frozen=True)
class RejectedRow:
    line: int
    reason: str


class RowError(ValueError):
    pass


class AgeProblem(StrEnum):
    TOO_OLD = "too-old"  # turns 23 this month, or did before
    NOT_BORN = "not-born"  # the month lies more than 23 years ahead


def age_problem(limit_month: str, today: date) -> AgeProblem | None:
    """Why a youth whose age limit month (YYYY-MM) is `limit_month` may not be registered
    on `today`, or None: a registration ends at the start of the month they turn 23
    (policy rule 5), and a month more than 23 years ahead is of no one born yet. The
    producer's rows and the desk's forms both ask this."""
    if limit_month <= month_of(today):
        return AgeProblem.TOO_OLD
    if limit_month > month_of(date(today.year + AGE_LIMIT, today.month, 1)):
        return AgeProblem.NOT_BORN
    return None


# No field of a partner row is anywhere near this: a larger one is refused, not read.
MAX_FIELD = 64 * 1024
csv.field_size_limit(MAX_FIELD)


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, raw fields) of each row; the format follows the file's extension."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield (
                        number,
                        {"__error__": _("not valid JSON ({problem})").format(problem=exc.msg)},
                    )
                    continue
                yield number, data if isinstance(data, dict) else {"__error__": _("not an object")}
        return
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        while True:
            starts = reader.line_num + 1  # the line the next row starts on
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                # A field past the limit (or a broken quote) is this row's problem only:
                # one reject line, and the reader goes on with the next line.
                too_large = "field larger than field limit" in str(exc)
                yield (
                    starts,
                    {
                        "__error__": _("a field is larger than {size} KiB").format(
                            size=MAX_FIELD // 1024
                        )
                        if too_large
                        else _("not valid CSV ({problem})").format(problem=exc)
                    },
                )
                continue
            yield reader.line_num, dict(row)


def _text(raw: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = raw.get(name)
    text = "" if value is None else str(value).strip()
    if required and not text:
        raise RowError(_("{field} is empty").format(field=name))
    if re.search(f"[{NOT_TEXT}]", text):
        raise RowError(_("{field} holds control or invisible characters").format(field=name))
    return text


def _bsn(value: str, what: str) -> str:
    if not is_valid_bsn(value):
        raise RowError(
            _("{field} is not a valid BSN (nine digits passing the elfproef)").format(field=what)
        )
    return value


def _date(value: str, what: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RowError(_("{field} is not a date (YYYY-MM-DD)").format(field=what)) from None


def _month(value: str, what: str) -> str:
    try:
        day = date.fromisoformat(f"{value}-01")
    except ValueError:
        raise RowError(_("{field} is not a month (YYYY-MM)").format(field=what)) from None
    if len(value) != 7:
        raise RowError(_("{field} is not a month (YYYY-MM)").format(field=what))
    return month_of(day)


def validate(line: int, raw: dict[str, Any], *, today: date) -> SourceRow:
    if "__error__" in raw:
        raise RowError(str(raw["__error__"]))
    child = _bsn(_text(raw, "child_bsn"), "child_bsn")
    parents_text = _text(raw, "parent_bsns", required=False)
    parents = tuple(
        _bsn(p.strip(), _("a parent_bsns entry")) for p in parents_text.split(";") if p.strip()
    )
    if len(parents) > 4:
        raise RowError(_("parent_bsns lists more than 4 people"))
    if child in parents:
        raise RowError(_("child_bsn also appears in parent_bsns"))
    # Only the month the youth turns 23 leaves the partner; the day stays here.
    born_text = _text(raw, "date_of_birth", required=False)
    month_text = _text(raw, "age_limit_month", required=False)
    if bool(born_text) == bool(month_text):
        raise RowError(_("give exactly one of date_of_birth and age_limit_month"))
    if born_text:
        born = _date(born_text, "date_of_birth")
        if born > today:
            raise RowError(_("date_of_birth lies in the future"))
        limit_month = month_of(date(born.year + AGE_LIMIT, born.month, 1))
    else:
        limit_month = _month(month_text, "age_limit_month")
    problem = age_problem(limit_month, today)
    if problem is AgeProblem.TOO_OLD:
        raise RowError(
            _(
                "the youth turns 23 this month or turned 23 before; only youths under 23 "
                "may be registered, and a registration ends at the start of the month they "
                "turn 23"
            )
        )
    if problem is AgeProblem.NOT_BORN:
        raise RowError(_("age_limit_month lies more than 23 years ahead: no youth born yet"))
    try:
        category = Category(_text(raw, "category"))
    except ValueError:
        allowed = ", ".join(c.value for c in Category)
        raise RowError(_("category is not one of: {allowed}").format(allowed=allowed)) from None
    wijk = _text(raw, "wijk")
    if not WIJK.match(wijk):
        raise RowError(_("wijk is not a CBS wijk code like WK079701"))
    registered_text = _text(raw, "registered_at")
    try:
        registered = datetime.fromisoformat(registered_text)
    except ValueError:
        raise RowError(_("registered_at is not an ISO date or date-time")) from None
    if registered.tzinfo is None:
        registered = (
            datetime.combine(registered.date(), time(12), tzinfo=UTC)
            if len(registered_text) == 10
            else registered.replace(tzinfo=UTC)
        )
    if registered.date() > today:
        raise RowError(_("registered_at lies in the future"))
    email = _text(raw, "worker_email")
    if not EMAIL.match(email):
        raise RowError(_("worker_email is not an e-mail address"))
    phone = _text(raw, "worker_phone", required=False) or None
    if phone is not None and not re.match(r"^\+?[0-9 ()-]{6,20}$", phone):
        raise RowError(_("worker_phone is not a phone number"))
    worker = WorkerContact(
        worker_id=_text(raw, "worker_id")[:64],
        display_name=_text(raw, "worker_name")[:120],
        email=email,
        phone=phone,
    )
    household = _text(raw, "household_id", required=False) or None
    reference = _reference(_text(raw, "reference", required=False))
    if reference is not None and _holds_bsn(reference, (child, *parents)):
        raise RowError(
            _(
                "reference holds this row's child_bsn or a parent_bsns entry; give your own "
                "case or dossier number instead, never a BSN"
            )
        )
    return SourceRow(
        line=line,
        child_bsn=child,
        parent_bsns=parents,
        household_id=household,
        age_limit_month=limit_month,
        category=category,
        wijk=wijk,
        registered_at=registered,
        worker=worker,
        reference=reference,
    )


_REFERENCE: TypeAdapter[str] = TypeAdapter(PartnerReference)


def _reference(value: str) -> str | None:
    """The partner's own case or dossier number, or None; never one that would carry a
    BSN (the reason does not repeat it)."""
    if not value:
        return None
    try:
        return _REFERENCE.validate_python(value)
    except ValidationError as invalid:
        problem = invalid.errors()[0]
        if problem["type"] == "string_too_long":
            raise RowError(_("reference is longer than 64 characters")) from None
        if problem["type"] == "string_pattern_mismatch":
            raise RowError(_("reference holds control or invisible characters")) from None
        if "holds a date" in problem["msg"]:
            raise RowError(
                _(
                    "reference holds a date, perhaps a date of birth; give your own case or "
                    "dossier number instead, without a date"
                )
            ) from None
        raise RowError(
            _(
                "reference holds a number that passes the elfproef, like a BSN; give your own "
                "case or dossier number instead, never a BSN"
            )
        ) from None


def _holds_bsn(text: str, bsns: tuple[str, ...]) -> bool:
    """Whether the digits of `text` contain one of `bsns`, also without its leading zero."""
    digits = "".join(c for c in unicodedata.normalize("NFKC", text) if c.isdigit())
    return any(b in digits or b.lstrip("0") in digits for b in bsns)

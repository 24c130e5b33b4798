"""Message catalogues for what people read outside the browser: the partner admin's
command line, the printable access report and the digest e-mail. Dutch by default,
English on request.

The source strings are English; `shared/locale/<language>/LC_MESSAGES/vroegsignaal.po`
translates them (gettext catalogues, read with Babel; `make catalogue` refreshes them
from the source). Dates and times are Europe/Amsterdam, in the language's own format.
The browser pages have their own catalogues (`web/i18n/*.json`, `shared/static/i18n.js`).
"""

from __future__ import annotations

import gettext
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES = ("nl", "en")
DEFAULT_LANGUAGE = "nl"
DOMAIN = "vroegsignaal"
LOCALES = Path(__file__).parent / "locale"
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
ENVIRONMENT = "VS_LANGUAGE"

_chosen: ContextVar[str | None] = ContextVar("vroegsignaal_language", default=None)


class UnknownLanguage(ValueError):
    def __init__(self, value: str, where: str = f"--language or {ENVIRONMENT}") -> None:
        super().__init__(
            _("unknown language {value}: choose one of {choices} ({where})").format(
                value=repr(value), choices=", ".join(LANGUAGES), where=where
            )
        )


def _supported(value: str | None) -> str | None:
    if not value or not value.strip():
        return DEFAULT_LANGUAGE
    code = value.strip().lower().replace("-", "_").split(".")[0].split("_")[0]
    return code if code in LANGUAGES else None


def language_of(value: str | None, where: str | None = None) -> str:
    """A supported language from what a user gave ('nl', 'EN', 'nl_NL.UTF-8'); the
    default for nothing; UnknownLanguage (naming `where` to fix it) for anything else."""
    code = _supported(value)
    if code is None:
        raise UnknownLanguage(str(value), *([where] if where else []))
    return code


def active() -> str:
    """The language of this context: chosen (`use_language`, `choose`), else the
    environment's VS_LANGUAGE, else Dutch. An unusable VS_LANGUAGE means Dutch here; the
    command line refuses it up front."""
    return _chosen.get() or _supported(os.environ.get(ENVIRONMENT)) or DEFAULT_LANGUAGE


def choose(language: str) -> None:
    """Set the language for the rest of this context (a command-line process)."""
    _chosen.set(language_of(language))


@contextmanager
def use_language(language: str) -> Iterator[str]:
    token = _chosen.set(language_of(language))
    try:
        yield active()
    finally:
        _chosen.reset(token)


@contextmanager
def unchosen() -> Iterator[None]:
    """No language chosen in this context until the block ends (the environment's or
    Dutch), whatever a command run inside it chooses for itself."""
    token = _chosen.set(None)
    try:
        yield
    finally:
        _chosen.reset(token)


def catalogue_path(language: str) -> Path:
    return LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalogue of `language` (English is the source: no catalogue).
    Fuzzy entries are left out, so an unchecked translation shows the English."""
    path = catalogue_path(language)
    if not path.exists():
        return gettext.NullTranslations()
    with path.open("rb") as handle:
        catalogue = read_po(handle, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def _(message: str) -> str:
    """`message` in the active language."""
    return translations(active()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form for `n` in the active language (Dutch has two, as English)."""
    return translations(active()).ngettext(singular, plural, n)


def moment(value: datetime, language: str | None = None) -> str:
    """A date and time as people here read it: Amsterdam time, '2 december 2026 14:05'."""
    return format_datetime(value, "d MMMM y HH:mm", tzinfo=AMSTERDAM, locale=language or active())


def N_(message: str) -> str:
    """Marks `message` for the catalogue where it is defined; `_` translates it where it
    is shown."""
    return message

"""The operator-facing message catalogue (gettext). English is the source language; every
other language is a `locale/<lang>/LC_MESSAGES/station.po` beside this module.

The .po files are compiled in memory with babel when a language is selected (stdlib gettext
reads only compiled .mo catalogues, and a wheel or a checkout should not carry build output
that can go stale). `_()` looks the text up at call time, so whatever renders after
`use_language()` speaks the new language.
"""
from __future__ import annotations

import gettext
import io
from pathlib import Path

from station.config import UI_LANGUAGES
from station.errors import ConfigError

DOMAIN = "station"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"

_current: gettext.NullTranslations = gettext.NullTranslations()


def catalogue(language: str) -> gettext.NullTranslations:
    """The translations of `language` ("en": the source texts themselves)."""
    if language not in UI_LANGUAGES:
        raise ConfigError(f"no message catalogue for language {language!r}; known: {', '.join(UI_LANGUAGES)}")
    if language == "en":
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo  # only when a translation is used
    from babel.messages.pofile import read_po

    po = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    with po.open("rb") as fh:
        messages = read_po(fh, locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, messages)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def use_language(language: str) -> None:
    global _current
    _current = catalogue(language)


def _(message: str) -> str:
    return _current.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _current.ngettext(singular, plural, n)

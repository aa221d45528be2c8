"""The message catalogue: every operator-facing text in station/operator and station/ui is
in the shipped German catalogue, with the same placeholders, and [ui] language selects it."""
from __future__ import annotations

import re
import string
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from station.operator import i18n

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "station" / "operator" / "locale" / "de" / "LC_MESSAGES" / "station.po"


def _source_texts() -> set[str]:
    texts = set()
    for folder in ("station/operator", "station/ui"):
        for _file, _line, message, _comments, _context in extract_from_dir(
                ROOT / folder, keywords={"_": None, "N_": None}):
            texts.add(message)
    return texts


def _placeholders(text: str) -> set[str]:
    return {field for _lit, field, _spec, _conv in string.Formatter().parse(text) if field is not None}


def test_the_german_catalogue_covers_every_text_with_the_same_placeholders():
    with PO.open("rb") as fh:
        catalogue = {m.id: m.string for m in read_po(fh) if m.id}
    texts = _source_texts()
    assert texts, "no texts found: the extraction is broken"
    missing = sorted(t for t in texts if not catalogue.get(t))
    assert not missing, f"not translated: {missing}"
    for text in texts:
        assert _placeholders(catalogue[text]) == _placeholders(text), text


def test_use_language_switches_what_is_shown():
    try:
        i18n.use_language("de")
        assert i18n._("PASS") == "OK"
        assert i18n._("Slot {slot} is waiting for a scan.").format(slot="S2") == "Platz S2 wartet auf einen Scan."
        i18n.use_language("en")
        assert i18n._("PASS") == "PASS"
    finally:
        i18n.use_language("en")


def test_no_compiled_catalogue_is_shipped():
    # Compiled in memory from the .po (station/operator/i18n.py): nothing to go stale.
    assert not list((ROOT / "station").rglob("*.mo"))
    assert re.search(r"locale/\*/LC_MESSAGES/\*\.po", (ROOT / "pyproject.toml").read_text())

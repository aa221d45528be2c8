"""[ui] and [scan]: bad values are refused naming the file and key."""
from __future__ import annotations

from pathlib import Path

import pytest

from station.config import load_config
from station.drivers.registry import line_options
from station.errors import ConfigError
from station.operator.session import Session

EXAMPLE = Path(__file__).resolve().parents[2] / "fixtures" / "station.example.toml"


def _with(tmp_path, table: str, text: str) -> Path:
    path = tmp_path / "station.toml"
    source = EXAMPLE.read_text()
    path.write_text(source.replace(f"\n[{table}]\n", f"\n[{table}]\n{text}\n", 1))
    return path


@pytest.mark.parametrize("table, text, message", [
    ("scan", 'operator_x = "OP-.*"', r"\[scan\]: unknown key\(s\) operator_x"),
    ("ui", 'language_x = "fr"', r"\[ui\]: unknown key\(s\) language_x"),
])
def test_unknown_keys_are_refused(tmp_path, table, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_with(tmp_path, table, text))


def test_a_pattern_that_is_not_a_regular_expression_is_refused(tmp_path):
    path = tmp_path / "station.toml"
    path.write_text(EXAMPLE.read_text().replace('operator = "OP-[A-Za-z0-9]+"', 'operator = "OP-[A-Z"'))
    with pytest.raises(ConfigError, match=r"\[scan\] operator: expected a regular expression"):
        load_config(path)


def test_a_language_without_a_catalogue_is_refused(tmp_path):
    path = tmp_path / "station.toml"
    path.write_text(EXAMPLE.read_text().replace('language = "en"', 'language = "fr"'))
    with pytest.raises(ConfigError, match=r"\[ui\] language: expected one of en, de, got 'fr'"):
        load_config(path)


def test_the_operator_terminal_speaks_to_devices_as_the_line_is_configured(tmp_path):
    # The terminal's session opens drivers with the [line] settings, as `station run` does:
    # the line's baud rate, the compact extension and the rate to switch to.
    path = _with(tmp_path, "line", "fast_baud = 921600\ncompact = false")
    path.write_text(path.read_text().replace("\nbaud = 115200", "\nbaud = 57600", 1))
    cfg = load_config(path)
    session = Session(cfg, fixture=None, publish=lambda event: None)
    assert session.driver_opts == line_options(cfg.line)
    assert (session.driver_opts["baudrate"], session.driver_opts["fast_baud"],
            session.driver_opts["compact"]) == (57600, 921600, False)

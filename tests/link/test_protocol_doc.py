"""docs/protocol.md is the contract, and a firmware team gets nothing else: every frame it
shows must be a real frame (correct checksum), except the one the text says was hit by line
noise; every table and limit it states is the one the station's code applies; and it never
defers to the station's code."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from station.config import LineConfig
from station.drivers.identity import REQUIRED, RULES
from station.link.codec import (
    COMMANDS, MAX_FRAME, MIN_MTU, ErrorCode, FrameError, FrameErrorReason, Verb, crc16_ccitt_false,
    decode_frame,
)
from station.link.transport import DEFAULT_BAUDRATE

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _transcript_lines():
    text = DOC.read_text()
    block = text.split("## 7. Example session", 1)[1].split("```", 2)[1]
    return block.splitlines()


def test_every_transcript_frame_decodes():
    frames, noisy = 0, False
    for line in _transcript_lines():
        if "line noise" in line:
            noisy = True
            continue
        match = re.fullmatch(r"[SD][<>] (.*\*[0-9A-F]{4})", line)
        if not match:
            continue
        raw = match.group(1).encode() + b"\n"
        if noisy:
            with pytest.raises(FrameError) as exc:
                decode_frame(raw)
            assert exc.value.reason is FrameErrorReason.BAD_CHECKSUM
            noisy = False
            continue
        decode_frame(raw)
        frames += 1
    assert frames > 40


def test_crc_table_in_the_doc_is_right():
    rows = re.findall(r"^\| `([^`|]*)` \| `([0-9A-F]{4})`", DOC.read_text(), re.M)
    assert len(rows) >= 4
    for data, crc in rows:
        assert crc16_ccitt_false(data.encode()) == int(crc, 16)


def test_error_table_in_the_doc_matches_the_codec():
    section = DOC.read_text().split("## 5. Error codes", 1)[1].split("## 6.", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z]+)` \|", section, re.M))
    assert documented == {c.value for c in ErrorCode}


def _section(title: str, end: str) -> str:
    return DOC.read_text().split(title, 1)[1].split(end, 1)[0]


def test_the_doc_stands_alone_without_naming_station_code():
    # A firmware team gets protocol.md only: the contract may not defer to the station's code.
    text = DOC.read_text()
    assert not re.search(r"codec|station/|tests/|\.py\b", text)


def test_hello_field_table_is_the_validator_the_line_and_the_kit_use():
    section = _section("### HELLO", "### BEGIN")
    rows = re.findall(r"^\| `([a-z_]+)` \| (yes|no) \| .* \| `(.+)` \|$", section, re.M)
    documented = {key: (required == "yes", pattern.replace("\\|", "|"))
                  for key, required, pattern in rows}
    assert documented == {key: (key in REQUIRED, rule.pattern.pattern)
                          for key, rule in RULES.items()}


def test_timeout_table_matches_the_commands():
    section = _section("## 6. Timeouts and retries", "## 7.")
    rows = re.findall(r"^\| ([A-Z]+) \| ([0-9.]+) s.*? \| ([0-9]+) \| (?:\*\*)?(yes|no)", section, re.M)
    assert {Verb(v): (float(t), int(r), i == "yes") for v, t, r, i in rows} == {
        verb: (spec.timeout_s, spec.retries, spec.idempotent) for verb, spec in COMMANDS.items()}


def test_stated_limits_and_line_speed_are_the_code_s():
    text = DOC.read_text()
    assert f"MAX_FRAME ({MAX_FRAME})" in text and f"{MAX_FRAME}-byte frame is accepted" in text
    assert f"a {MAX_FRAME + 1}-byte one is refused as too long" in text
    assert f"`mtu=`, {MIN_MTU} to {MAX_FRAME}" in text
    assert f"**{LineConfig().baud} baud**" in _section("## 1. Roles and the line", "## 2.")
    assert LineConfig().baud == DEFAULT_BAUDRATE

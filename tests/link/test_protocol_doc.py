"""docs/protocol.md is the contract: every frame it shows must be a real frame (correct
checksum), except the one the text says was hit by line noise."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from station.link.codec import ErrorCode, FrameError, FrameErrorReason, crc16_ccitt_false, decode_frame

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

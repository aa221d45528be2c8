"""The example session in docs/protocol.md is what the reference device really does."""
from __future__ import annotations

import re
from pathlib import Path

from tests.sim.transcript import run_session

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _shape(line: str) -> str:
    """A transcript line with what changes between runs masked: checksums, hashes, base64
    chunks and lengths (keys and signatures differ each run)."""
    line = re.sub(r"\*[0-9A-F]{4}$", "*CRC", line)
    line = re.sub(r"(says|gives) [0-9A-F]{4}", r"\1 CRC", line)
    line = re.sub(r"\b[0-9a-f]{64}\b(?!\*)", "SHA", line)
    line = re.sub(r"\b[0-9a-f]{64}\*", "SHA*", line)
    line = re.sub(r" [A-Za-z0-9+/]{20,}={0,2}(?=\*)", " B64", line)
    return re.sub(r"\b\d{2,}\b", "N", line)


def test_doc_transcript_matches_a_fresh_run_of_the_reference_device(tmp_path):
    block = DOC.read_text().split("## 7. Example session", 1)[1].split("```", 2)[1]
    documented = [_shape(line) for line in block.strip().splitlines()]
    fresh = [_shape(line) for line in run_session(tmp_path)]
    assert fresh == documented

"""docs/audit.md, "Checking a bundle with openssl": the commands shown there, run as written on a
real bundle, accept it, and refuse a changed manifest."""
from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

from tests.cli_runner import run_station

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


def _doc_commands() -> list[str]:
    """The shell block of that section, one command a line."""
    text = DOC.read_text()
    section = text[text.index("### Checking a bundle with openssl"):]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def _sh(command: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True)


def test_the_documented_openssl_commands_check_a_real_bundle(qa_line, tmp_path):
    out = tmp_path / "WO-QA-1.zip"
    assert run_station("--config", qa_line.config_path, "audit", "export", "--batch", "WO-QA-1", "--format", "bundle",
                       "--out", out).returncode == 0
    work = tmp_path / "bundle"
    work.mkdir()
    with zipfile.ZipFile(out) as zf:
        zf.extractall(work)
    (work / "ROOT.pem").write_bytes(qa_line.root.read_bytes())
    commands = _doc_commands()
    assert any("openssl dgst -sha256 -verify" in c for c in commands)
    assert any("openssl verify" in c and "certificates/" in c for c in commands)
    for command in commands:
        result = _sh(command, work)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
    signature_check = next(c for c in commands if "openssl dgst -sha256 -verify" in c)
    assert "Verified OK" in _sh(signature_check, work).stdout
    certs = _sh(next(c for c in commands if "certificates/" in c), work).stdout
    assert certs.count(": OK") == len(list((work / "certificates").iterdir())) > 0

    # One changed byte in the manifest and the signature check fails; one in a member and the
    # hash check does.
    manifest = (work / "MANIFEST.json").read_bytes()
    (work / "MANIFEST.json").write_bytes(manifest.replace(b"WO-QA-1", b"WO-QA-9"))
    assert _sh(signature_check, work).returncode != 0
    (work / "MANIFEST.json").write_bytes(manifest)
    (work / "SUMMARY.txt").write_text("nothing to see\n")
    hash_check = next(c for c in commands if "sha256sum" in c or "-r" in c and "dgst" in c)
    failed = _sh(hash_check, work)
    assert failed.returncode != 0 and "SUMMARY.txt" in failed.stdout + failed.stderr

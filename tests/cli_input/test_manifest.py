"""Bad manifests are refused when loaded, naming file and line: oversized fields, extra fields,
labels and device ids outside their alphabet, a FIFO; duplicates are found in large manifests."""
from __future__ import annotations

import json
import os

import pytest

from station.engine.batch import Manifest
from station.errors import ConfigError
from tests.cli_runner import assert_clean_failure, run_station


def _refusal(tmp_path, data: bytes) -> str:
    path = tmp_path / "manifest.csv"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        Manifest.load(path)
    message = str(info.value)
    assert message.startswith(f"manifest {path} "), message
    return message


def test_a_field_over_the_csv_limit_is_refused_naming_the_line(tmp_path):
    message = _refusal(tmp_path, b"label\nL1\n" + b"L" * (128 * 1024 + 1) + b"\n")
    assert "line 3: field larger than field limit (131072)" in message


def test_a_row_with_more_fields_than_the_header_is_refused(tmp_path):
    message = _refusal(tmp_path, b"device_id,label\nAA01,L1\nAA02,L2,surplus\n")
    assert "line 3: 3 fields, but the header names 2" in message


@pytest.mark.parametrize("data,fragment", [
    (b"label\nL 1\n", "line 2: label 'L 1' is not 1-64 characters of A-Z a-z 0-9 : -"),
    (b"label\nL1\nL2\x1b[31m\n", r"line 3: label 'L2\x1b[31m' is not"),
    (b"label\n" + b"L" * 65 + b"\n", "line 2: label 'LLLL"),
    (b"device_id,label\nAA 01,L1\n", "line 2: device id 'AA 01' is not"),
    (b"device_id,label\nAA01\n", "line 2: label is empty"),
    (b"label\nL1\x00\n", r"line 2: label 'L1\x00' is not"),
    (b"label\nL1\n\xff\n", "line 3: not UTF-8 text"),
])
def test_bad_values_are_refused_when_the_manifest_loads(tmp_path, data, fragment):
    message = _refusal(tmp_path, data)
    assert fragment in message and "\x1b" not in message, message


def _generated(tmp_path, lines: int, last: tuple[str, str] | None = None):
    path = tmp_path / "big.csv"
    rows = [(f"{i:016X}", f"L-{i:08d}") for i in range(lines)]
    Manifest.write(path, rows + ([last] if last else []))
    return path


def test_a_large_generated_manifest_loads_in_order(tmp_path):
    manifest = Manifest.load(_generated(tmp_path, 50_000))
    assert len(manifest.labels) == len(manifest.label_by_device) == 50_000
    assert manifest.labels[:2] == ("L-00000000", "L-00000001") and manifest.labels[-1] == "L-00049999"
    assert manifest.label_by_device["000000000000C34F"] == "L-00049999"


@pytest.mark.parametrize("last,fragment", [
    (("FFFFFFFFFFFFFFFF", "L-00000007"), "line 50002: label L-00000007 appears twice"),
    # Device ids compare case-insensitively, as devices report them in either case.
    (("000000000000000a", "L-NEW"), "line 50002: device 000000000000000a appears twice"),
])
def test_a_duplicate_at_the_end_of_a_large_manifest_is_refused(tmp_path, last, fragment):
    with pytest.raises(ConfigError, match=fragment):
        Manifest.load(_generated(tmp_path, 50_000, last))


def test_a_manifest_that_is_a_fifo_is_refused_at_once(workdir, tmp_path):
    fifo = tmp_path / "m.csv"
    os.mkfifo(fifo)
    result = run_station("run", "--headless", "--batch", "WO", "--model", "SIM-1", "--manifest", fifo,
                         "--port", "/dev/null", cwd=workdir, timeout=30)
    assert_clean_failure(result, 2, f"manifest {fifo} is a FIFO (named pipe); expected a regular file")


def test_a_bad_manifest_line_stops_the_run_before_the_batch_opens(workdir, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("device_id,label\nAA01,L1\nAA02,L2,surplus\n")
    result = run_station("run", "--headless", "--batch", "WO-BAD", "--model", "SIM-1", "--manifest", manifest,
                         "--port", "/dev/null", cwd=workdir)
    assert_clean_failure(result, 2, f"manifest {manifest} line 3: 3 fields, but the header names 2")


def test_bench_manifest_loads_every_generated_line():
    result = run_station("bench", "manifest", "--lines", 2000, "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.splitlines()[-1])
    assert (figures["lines"], figures["devices_loaded"]) == (2000, 2000) and figures["manifest_load_s"] > 0

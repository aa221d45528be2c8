"""`station bench line`: a throwaway station provisions simulated devices (their simulator in
its own process) over real ptys with the real token and audit, and reports the figures the
line is judged by. A smoke test of correctness: every device passes, the bytes are counted,
the bound and the efficiency follow from them; the figures themselves are in
docs/performance.md, not asserted."""
from __future__ import annotations

import json
import math

from tests.cli_runner import run_station

REQUIRED = ("devices_per_hour", "efficiency", "station_added_ms_p50", "station_added_ms_p99",
            "cpu_ms_per_device", "slots", "devices", "bound_s_per_device", "step_ms",
            "peak_rss_mib", "peak_open_descriptors", "bytes_to_device", "bytes_from_device")


def test_bench_line_provisions_every_device_and_reports_the_wire_bound(tmp_path):
    baud, keygen_ms = 460800, 20
    result = run_station("bench", "line", "--slots", "2", "--devices", "4", "--baud", baud,
                         "--keygen-ms", keygen_ms, "--json", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(key in figures for key in REQUIRED), set(REQUIRED) - set(figures)
    assert (figures["passed"], figures["failed"], figures["devices"], figures["slots"]) == (4, 0, 4, 2)
    # A whole provisioning: the chain and certificate go to the device, the CSR comes back.
    assert figures["bytes_to_device"] > 2000 and figures["bytes_from_device"] > 500
    wire = (figures["bytes_to_device"] + figures["bytes_from_device"]) * 10 / baud
    assert math.isclose(figures["bound_s_per_device"], wire + keygen_ms / 1000, rel_tol=0.01)
    assert 0 < figures["efficiency"] <= 1.0
    assert figures["step_ms"]["issue"]["p50"] > 0 and figures["cpu_ms_per_device"] > 0
    assert list(tmp_path.iterdir()) == [], "the benchmark must leave nothing behind"


def test_bench_line_compact_and_fast_counts_fewer_bytes_at_the_rates_they_went_at(tmp_path):
    """--compact: the devices announce the extension; --fast-baud: their lines switch. The
    bound is then each byte at the rate it went at: less than all of them at --baud."""
    baud, keygen_ms = 115200, 20
    result = run_station("bench", "line", "--slots", "2", "--devices", "2", "--baud", baud,
                         "--keygen-ms", keygen_ms, "--compact", "--fast-baud", "921600", "--json",
                         cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert (figures["passed"], figures["compact"], figures["fast_baud"]) == (2, True, 921600)
    total = figures["bytes_to_device"] + figures["bytes_from_device"]
    assert figures["bytes_per_device"] == total and total <= 2500  # version 1: about 5,280
    assert figures["requests_per_device"] == 9  # HELLO LINE SYNC WRITE(Z) GENCSR WRITEZ x2 COMMIT SIGN
    assert figures["bound_s_per_device"] < total * 10 / baud + keygen_ms / 1000
    assert 0 < figures["keygen_share"] < 1

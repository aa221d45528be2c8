"""`station run --headless --discover`: the line takes its devices from udev as they are
plugged into the [discovery] slots (real libudev under umockdev, the real command, the real
token and SQLite; run_child.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli_runner import assert_clean_failure, run_station
from tests.discovery.conftest import require

CHILD = Path(__file__).with_name("run_child.py")


def test_run_discover_provisions_the_boards_plugged_into_slots(station_config, tmp_path):
    wrapper = require("umockdev-wrapper")
    result = subprocess.run([wrapper, sys.executable, str(CHILD), str(station_config.path), str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    printed = report["stdout"]
    assert report["code"] == 0, report
    a, b, stray = report["devices"]
    assert f"PASS slot=slot1 device={a} " in printed and f"PASS slot=slot2 device={b} " in printed, printed
    assert "IGNORED port=" in printed and "is not a slot in [discovery] slots" in printed, printed
    assert stray not in printed and "2 passed, 0 failed" in printed


def test_run_discover_without_a_discovery_table_is_a_usage_error(tmp_path):
    assert run_station("init", "--workdir", tmp_path).returncode == 0
    result = run_station("run", "--headless", "--discover", "--batch", "WO-1", "--model", "SIM-1",
                         "--manifest", __file__, cwd=tmp_path)
    assert_clean_failure(result, 2, "--discover needs [discovery] allow and slots")

"""The slot map: learned by plugging one board into each slot in turn (real libudev under
umockdev), written into station.toml with its comments kept; refusals of `slots learn`."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from station.config import load_config
from station.discovery.slots import write_slot_map
from tests.cli_runner import assert_clean_failure, run_station
from tests.discovery.conftest import EXAMPLE_CONFIG, require

PORT1 = "pci-0000:00:14.0-usb-0:1:1.0"
PORT2 = "pci-0000:00:14.0-usb-0:2:1.0"


def _example_copy(tmp_path) -> Path:
    path = tmp_path / "station.toml"
    shutil.copy(EXAMPLE_CONFIG, path)
    return path


def test_learn_walks_the_operator_through_the_slots(tmp_path):
    path = _example_copy(tmp_path)
    child = Path(__file__).with_name("learn_child.py")
    result = subprocess.run([require("umockdev-wrapper"), sys.executable, str(child), str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    said = result.stdout.splitlines()
    assert said[0].startswith("plug a device into slot1")
    assert said[1] == f"slot1 = {PORT2} (/dev/ttyACM1, 303a:1001, serial F4:12:FA:4E:2A:10); unplug it"
    assert said[2].startswith("plug a device into slot2")
    assert said[3] == f"slot2 = {PORT1} (/dev/ttyACM0, 1915:521f, serial E1A2B3C4D5E6); unplug it"
    assert load_config(path).discovery.slots == {"slot1": PORT2, "slot2": PORT1}


def test_writing_the_map_keeps_the_file_s_comments(tmp_path):
    path = _example_copy(tmp_path)
    before = path.read_text()
    write_slot_map(path, {"a": "pci-0000:00:14.0-usb-0:7:1.0"})
    after = path.read_text()
    assert load_config(path).discovery.slots == {"a": "pci-0000:00:14.0-usb-0:7:1.0"}
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    assert comments == [line for line in after.splitlines() if line.lstrip().startswith("#")]
    assert len(after.splitlines()) == len(before.splitlines())


def test_the_map_is_added_to_a_file_without_a_discovery_table(tmp_path, station_config):
    path = tmp_path / "station.toml"
    shutil.copy(station_config.path, path)
    write_slot_map(path, {"slot1": PORT1})
    assert load_config(path).discovery.slots == {"slot1": PORT1}


def test_learn_gives_up_when_nothing_is_plugged_in(tmp_path, umockdev_run):
    path = _example_copy(tmp_path)
    before = path.read_text()
    # Every fixture device is present from the start, so none of them counts as plugged in.
    result = subprocess.run([*umockdev_run, sys.executable, "-m", "station", "--config", str(path),
                             "slots", "learn", "--count", "1", "--timeout", "1"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == "station: no new allowlisted device was plugged into slot1 within 1 s"
    assert path.read_text() == before


def test_learn_needs_an_allowlist(tmp_path, station_config):
    path = tmp_path / "station.toml"
    shutil.copy(station_config.path, path)
    assert_clean_failure(run_station("--config", path, "slots", "learn", "--count", "2"), 2,
                         "[discovery] allow is empty")

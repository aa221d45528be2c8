"""`station devices`, `station udev rules|install` and `station slots show` as an operator runs
them: real processes, real libudev seeing umockdev's emulated USB devices."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.cli_runner import assert_clean_failure, run_station
from tests.discovery.conftest import EXAMPLE_CONFIG, ROOT


def _station_under_umockdev(prefix, *args):
    return subprocess.run([*prefix, sys.executable, "-m", "station", "--config", str(EXAMPLE_CONFIG), *args],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))


def test_devices_json_lists_every_usb_serial_device_with_slot_or_reason(umockdev_run):
    result = _station_under_umockdev(umockdev_run, "devices", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["port"]: row for row in json.loads(result.stdout)["devices"]}
    assert set(rows) == {"/dev/ttyACM0", "/dev/ttyACM1", "/dev/ttyUSB0", "/dev/ttyUSB1", "/dev/ttyUSB2"}
    assert rows["/dev/ttyACM0"] == {
        "port": "/dev/ttyACM0", "physical_port": "pci-0000:00:14.0-usb-0:1:1.0", "vendor_id": "1915",
        "product_id": "521f", "serial": "E1A2B3C4D5E6", "model": "Open_DFU_Bootloader", "slot": "slot1",
        "ignored": None, "udev_rules": False}
    assert rows["/dev/ttyACM1"]["slot"] == "slot2"
    assert rows["/dev/ttyUSB0"]["ignored"] == "0403:6001 is not in [discovery] allow"
    assert rows["/dev/ttyUSB1"]["serial"] is None
    assert rows["/dev/ttyUSB2"]["ignored"].endswith("is not a slot in [discovery] slots")


def test_devices_table_and_slots_show(umockdev_run):
    table = _station_under_umockdev(umockdev_run, "devices")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert len(lines) == 5
    assert "slot: slot1" in lines[0] and "udev rules not installed" in lines[0]
    assert "ignored: 1a86:7523 is not in [discovery] allow" in lines[3]
    slots = _station_under_umockdev(umockdev_run, "slots", "show")
    assert slots.returncode == 0, slots.stderr
    assert slots.stdout.splitlines() == [
        "slot1      pci-0000:00:14.0-usb-0:1:1.0     /dev/ttyACM0 1915:521f serial E1A2B3C4D5E6",
        "slot2      pci-0000:00:14.0-usb-0:2:1.0     /dev/ttyACM1 303a:1001 serial F4:12:FA:4E:2A:10"]


def test_udev_rules_match_the_checked_in_example():
    result = run_station("--config", EXAMPLE_CONFIG, "udev", "rules")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (ROOT / "udev" / "70-cert-station.rules").read_text()


def test_udev_install_writes_the_file(tmp_path):
    result = run_station("--config", EXAMPLE_CONFIG, "udev", "install", "--rules-dir", tmp_path, "--no-reload")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "70-cert-station.rules").read_text() == (ROOT / "udev" / "70-cert-station.rules").read_text()


def test_udev_install_into_an_unwritable_place_is_an_environment_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_station("--config", EXAMPLE_CONFIG, "udev", "install", "--rules-dir", blocker / "rules",
                         "--no-reload")
    assert_clean_failure(result, 3, "cannot write", "70-cert-station.rules")


def test_commands_need_a_configuration(tmp_path):
    for args in (["devices"], ["udev", "rules"], ["slots", "show"]):
        assert_clean_failure(run_station("--config", tmp_path / "none.toml", *args), 2, "configuration file not found")

"""Hotplug at any time during a batch, end to end: a child process runs under
`umockdev-wrapper` (libudev's netlink and /sys, /dev redirected into an umockdev Testbed), with
the real engine fed by the real udev source, the session's token and a real SQLite audit, and
the reference simulator answering on the Testbed's pseudo-terminals (hotplug_child.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.discovery.conftest import require

CHILD = Path(__file__).with_name("hotplug_child.py")


def test_plug_pull_mid_write_and_replug(station_config, tmp_path):
    wrapper = require("umockdev-wrapper")
    result = subprocess.run([wrapper, sys.executable, str(CHILD), str(station_config.path), str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    a, b, c = (report["devices"][k] for k in "abc")
    # The Testbed sends udev events, so the monitor is used, not the polling fallback.
    assert report["polling"] is False and report["notices"] == []
    outcomes = [(o["event"], o["slot"], o["device"], o["step"], o["reason"]) for o in report["outcomes"]]
    assert ("DevicePassed", "slot1", a, None, None) in outcomes  # plugged in: its slot started
    assert ("DeviceFailed", "slot1", b, "write", "device removed during write") in outcomes
    assert ("DevicePassed", "slot2", c, None, None) in outcomes  # the other slot, untouched
    assert outcomes[-1] == ("DevicePassed", "slot1", b, None, None)  # replugged: provisioned cleanly
    assert len(outcomes) == 4
    # Signed, never committed: the audit calls it undelivered, with the reason.
    assert report["b_after_pull"] == [["undelivered", "write: device removed during write"]]
    assert report["b_final"][-1] == ["verified"] and report["b_state"] == ["passed"]
    # An allowlisted board on a port that is no slot: reported with the reason, never provisioned.
    assert report["ignored"] == [["/dev/ttyUSB2",
                                  "physical port pci-0000:00:14.0-usb-0:5:1.0 is not a slot in [discovery] slots"]]

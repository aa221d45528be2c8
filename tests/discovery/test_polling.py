"""Without a running udev daemon a udev monitor receives nothing: the source detects that,
says so once, and finds devices by periodic enumeration instead."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from station.config import DiscoveryConfig
from station.discovery import udev
from tests.discovery.conftest import require


def test_no_daemon_is_detected(monkeypatch, tmp_path):
    monkeypatch.delenv("UMOCKDEV_DIR", raising=False)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    monkeypatch.setattr(udev, "UDEVD_CONTROL", tmp_path / "control")
    assert udev.UdevSource(DiscoveryConfig()).polling
    (tmp_path / "control").touch()
    assert not udev.UdevSource(DiscoveryConfig()).polling


def test_the_fallback_is_announced_once(monkeypatch, tmp_path):
    monkeypatch.setattr(udev, "UDEVD_CONTROL", tmp_path / "control")
    notices, stop = [], threading.Event()
    source = udev.UdevSource(DiscoveryConfig(poll_interval=0.05), say=notices.append, events=False)
    sink = type("Sink", (), {"device_attached": lambda self, d: None, "device_detached": lambda self, d: None})()
    thread = threading.Thread(target=source.watch, args=(sink, stop))
    thread.start()
    stop.wait(0.3)  # several enumerations of this machine (no USB serial devices here)
    stop.set()
    thread.join()
    assert len(notices) == 1 and "enumerating every 0.05 s" in notices[0] and "no udev daemon" in notices[0]


def test_enumeration_sees_devices_come_and_go():
    child = Path(__file__).with_name("polling_child.py")
    result = subprocess.run([require("umockdev-wrapper"), sys.executable, str(child)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert len(report["notices"]) == 1
    assert report["reports"] == [["attached", "/dev/ttyACM1", "slot2"], ["attached", "/dev/ttyACM0", "slot1"],
                                 ["detached", "/dev/ttyACM0", "slot1"]]

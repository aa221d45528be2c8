"""Run under `umockdev-wrapper` by test_run_discover.py: the real `station run --headless
--discover` command (in this process, so that it sees the same umockdev Testbed), with two
boards plugged into slot1 and slot2 and a third, allowlisted, on a port that is no slot; each
board is served by the reference simulator on the Testbed's pseudo-terminal.

    umockdev-wrapper python tests/discovery/run_child.py CONFIG WORKDIR

Prints one JSON object: the command's exit code and what it printed. The parent asserts.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import threading
import time
from pathlib import Path

import tomlkit

from station.cli.main import main as station_main
from station.sim.device import Device, Identity, derive_device_id
from station.sim.store import DeviceStore
from testbed import MockedUsbDevice, new_testbed  # beside this file

SLOT1 = "pci-0000:00:14.0-usb-0:1:1.0"
SLOT2 = "pci-0000:00:14.0-usb-0:2:1.0"


def main(config_path: str, workdir: str) -> None:
    work = Path(workdir)
    # The session's station, with a discovery table and its own audit database. Written beside
    # the session's station.toml, so that its relative paths (token, PIN file, chain) still hold.
    doc = tomlkit.parse(Path(config_path).read_text())
    doc["audit"]["database"] = str(work / "audit.db")
    doc.setdefault("line", tomlkit.table())["label_source"] = "device-id"
    doc["line"]["timeout_scale"] = 0.25
    discovery = tomlkit.table()
    discovery["allow"] = ["1915:521f", "303a:1001", "10c4:ea60"]
    discovery["slots"] = {"slot1": SLOT1, "slot2": SLOT2}
    discovery["poll_interval"] = 0.1
    doc["discovery"] = discovery
    config = Path(config_path).with_name(f"station-discover-{os.getpid()}.toml")
    config.write_text(tomlkit.dumps(doc))

    def sim(index: int) -> Device:
        identity = Identity(derive_device_id("run-discover", index), model="SIM-1")
        return Device(identity, DeviceStore(work / "flash" / identity.device_id), keygen_s=0.02)

    testbed = new_testbed()
    boards = [MockedUsbDevice(testbed, "usb-nordic-slot1.umockdev", sim(0)),
              MockedUsbDevice(testbed, "usb-espressif-slot2.umockdev", sim(1)),
              MockedUsbDevice(testbed, "usb-cp210x-unmapped.umockdev", sim(2))]

    def plug_later() -> None:
        time.sleep(1.0)  # the command is running and watching by then: hotplug, not start-up
        for board in boards:
            board.plug()

    threading.Thread(target=plug_later, daemon=True).start()
    out, err = io.StringIO(), io.StringIO()
    os.environ["STATION_CONFIG"] = str(config)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            station_main(["run", "--headless", "--discover", "--batch", "WO-DISCOVER", "--model", "SIM-1",
                          "--expected", "2"])
            code = 0
        except SystemExit as exc:
            code = exc.code
    print(json.dumps({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue(),
                      "devices": [b.device.device_id for b in boards]}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

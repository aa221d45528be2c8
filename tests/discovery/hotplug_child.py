"""Run under `umockdev-wrapper` by test_hotplug.py: a real engine fed by the real udev source
(pyudev on libudev), USB CDC-ACM devices plugged into and pulled out of an umockdev Testbed,
each served by the reference simulator on the Testbed's real pseudo-terminal.

    umockdev-wrapper python tests/discovery/hotplug_child.py CONFIG WORKDIR

Prints one JSON object: what the engine and the audit database said. The parent asserts.
"""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import select
import sqlite3
import sys
import threading
import time
from pathlib import Path

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

from station.boot import open_station  # noqa: E402
from station.config import DiscoveryConfig, load_config  # noqa: E402
from station.discovery.feed import start_feed  # noqa: E402
from station.discovery.udev import UdevSource  # noqa: E402
from station.engine.batch import Batch  # noqa: E402
from station.engine.engine import Engine  # noqa: E402
from station.engine.events import DeviceFailed, DevicePassed, StepStarted  # noqa: E402
from station.sim.device import Device, Identity, derive_device_id  # noqa: E402
from station.sim.faults import FaultPlan, FaultSpec  # noqa: E402
from station.sim.store import DeviceStore  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
MODEL = "SIM-1"
SLOT1 = "pci-0000:00:14.0-usb-0:1:1.0"
SLOT2 = "pci-0000:00:14.0-usb-0:2:1.0"


class MockedUsbDevice:
    """A simulated device behind one umockdev fixture: plug() adds it to the Testbed (udev
    `add`) and serves it on the node's pty; unplug() closes the pty and sends `remove`."""

    def __init__(self, testbed, fixture: str, device: Device):
        self.testbed, self.device = testbed, device
        self.text = (FIXTURES / fixture).read_text()
        first = self.text.split("\n\n", 1)[0].splitlines()
        self.syspath = "/sys" + first[0].removeprefix("P: ")
        self.devnode = "/dev/" + first[1].removeprefix("N: ")
        self.fd: int | None = None
        self._stop = threading.Event()
        self.silent = threading.Event()  # the firmware hangs: input is read and never answered
        self._thread: threading.Thread | None = None

    used_nodes: set[str] = set()  # every node name the Testbed has had

    def plug(self) -> None:
        while self.devnode in self.used_nodes:
            self._renumber()
        self.used_nodes.add(self.devnode)
        self.testbed.add_from_string(self.text)
        self.fd = self.testbed.get_dev_fd(self.devnode)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _renumber(self) -> None:
        # umockdev 0.17 keeps a removed node's name in its table of ptys, so a replugged device
        # must come back under a new name (ttyACM0 -> ttyACM10), as Linux also does while the
        # old node is still held open. Its physical port (ID_PATH), and so its slot, is the same.
        old = self.devnode.removeprefix("/dev/")
        self.generation = getattr(self, "generation", 9) + 1  # new minors stay clear of the fixtures' 
        new = old.rstrip("0123456789") + str(self.generation)
        major = next(line for line in self.text.splitlines() if line.startswith("E: MAJOR=")).split("=")[1]
        minor = next(line for line in self.text.splitlines() if line.startswith("E: MINOR=")).split("=")[1]
        self.text = (self.text.replace(f"/{old}", f"/{new}").replace(f"N: {old}", f"N: {new}")
                     .replace(f"MINOR={minor}", f"MINOR={self.generation}")
                     .replace(f"dev={major}:{minor}", f"dev={major}:{self.generation}"))
        self.syspath = self.syspath.replace(f"/{old}", f"/{new}")
        self.devnode = f"/dev/{new}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 4096)
            except OSError as exc:
                if exc.errno == errno.EIO:  # the station has not opened the port (yet/again)
                    time.sleep(0.02)
                    continue
                return
            if self.silent.is_set():
                continue
            for answer in self.device.feed(data):
                if answer.work_s and self._stop.wait(answer.work_s):
                    return
                if answer.data:
                    os.write(self.fd, answer.data)

    def unplug(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self.fd)  # the station's next read or write fails: the port vanished
        # Deepest first; remove_device alone sends no event (umockdev 0.17).
        self.testbed.uevent(self.syspath, "remove")
        for line in self.text.splitlines():
            if line.startswith("P: "):
                self.testbed.remove_device("/sys" + line[3:])
            elif line.startswith(("N: ", "S: ")):
                # umockdev 0.17 leaves device nodes and symlinks behind, and its map of ptys
                # (pty name -> major:minor): a replug whose new pty reuses the old number
                # aborts on "symlink(majmin, dest) == 0".
                node = Path(self.testbed.get_root_dir(), "dev", line[3:])
                if os.path.lexists(node):
                    node.unlink()
        majmin = next(line[len("A: dev="):] for line in self.text.splitlines() if line.startswith("A: dev="))
        for entry in Path(self.testbed.get_root_dir(), "dev", ".ptymap").iterdir():
            if os.readlink(entry) == majmin:
                entry.unlink()

    def power_cycle(self) -> None:
        """RAM state lost, flash kept (as a replugged board)."""
        old = self.device
        old.store.load()
        self.device = Device(old.identity, old.store, faults=old.faults, keygen_s=old.keygen_s)


class Recorder:
    def __init__(self):
        self.events = []
        self.changed = threading.Condition()

    def __call__(self, event) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def wait_for(self, predicate, timeout: float = 30.0):
        with self.changed:
            if not self.changed.wait_for(lambda: any(predicate(e) for e in self.events), timeout):
                raise SystemExit(f"timed out waiting; events so far: {self.events}")
            return next(e for e in self.events if predicate(e))


def main(config_path: str, workdir: str) -> None:
    work = Path(workdir)
    cfg = load_config(config_path)
    cfg = dataclasses.replace(
        cfg, audit=dataclasses.replace(cfg.audit, database=work / "audit.db"),
        line=dataclasses.replace(cfg.line, label_source="device-id", timeout_scale=0.25),
        discovery=DiscoveryConfig(allow=("1915:521f", "303a:1001", "10c4:ea60"), slots={"slot1": SLOT1, "slot2": SLOT2}))

    def sim(index: int, *faults: str, keygen_s: float = 0.02) -> Device:
        identity = Identity(derive_device_id("hotplug", index), model=MODEL)
        return Device(identity, DeviceStore(work / "flash" / identity.device_id),
                      faults=FaultPlan([FaultSpec.parse(f) for f in faults]), keygen_s=keygen_s)

    testbed = UMockdev.Testbed.new()
    testbed.add_from_file(str(FIXTURES / "usb-controller.umockdev"))
    notices, ignored = [], []
    result: dict = {"notices": notices, "ignored": ignored}
    with open_station(cfg) as station:
        engine = Engine(station, Batch(batch_id="WO-HOT", model=MODEL, operator="op-1"), cfg.line,
                        driver_opts={"timeout_scale": 0.25})
        recorder = Recorder()
        engine.bus.subscribe(recorder)
        engine.start()
        stop = threading.Event()
        source = UdevSource(cfg.discovery, say=notices.append)
        result["polling"] = source.polling
        feeder = start_feed(source, engine, stop, ignored=lambda d: ignored.append([d.port, d.ignored]))

        # 1. Plugging a device starts its slot.
        a = MockedUsbDevice(testbed, "usb-nordic-slot1.umockdev", sim(0))
        a.plug()
        recorder.wait_for(lambda e: isinstance(e, DevicePassed) and e.device_id == a.device.device_id)
        a.unplug()  # pulled out after PASS: nothing to fail

        # 2. An allowlisted board on a port that is no slot is shown ignored, never provisioned.
        stray = MockedUsbDevice(testbed, "usb-cp210x-unmapped.umockdev", sim(9))
        stray.plug()
        deadline = time.monotonic() + 10
        while not ignored and time.monotonic() < deadline:
            time.sleep(0.05)

        # 3. B in slot 1 hangs as the station starts writing its certificate and is pulled out;
        # C in slot 2 is provisioned at the same time and must not notice.
        b = MockedUsbDevice(testbed, "usb-nordic-slot1.umockdev", sim(1))
        c = MockedUsbDevice(testbed, "usb-espressif-slot2.umockdev", sim(2, keygen_s=0.3))
        pulled = threading.Event()  # B hangs in write once; after its replug it behaves
        engine.bus.subscribe(lambda e: b.silent.set() if isinstance(e, StepStarted) and e.step == "write"
                             and e.device_id == b.device.device_id and not pulled.is_set() else None)
        c.plug()
        b.plug()
        recorder.wait_for(lambda e: isinstance(e, StepStarted) and e.step == "write" and e.device_id == b.device.device_id)
        b.unplug()
        pulled.set()
        recorder.wait_for(lambda e: isinstance(e, DeviceFailed) and e.device_id == b.device.device_id)
        recorder.wait_for(lambda e: isinstance(e, DevicePassed) and e.device_id == c.device.device_id)
        with sqlite3.connect(cfg.audit.database) as db:
            result["b_after_pull"] = db.execute("select status, status_reason from certificates where device_id = ?",
                                                (b.device.device_id,)).fetchall()

        # 4. Replugging B later provisions it cleanly.
        b.power_cycle()
        b.silent.clear()
        b.plug()
        recorder.wait_for(lambda e: isinstance(e, DevicePassed) and e.device_id == b.device.device_id)

        engine.stop()
        engine.finish()
        stop.set()
        feeder.join(timeout=5)
        result["outcomes"] = [
            {"event": type(e).__name__, "slot": e.slot, "device": e.device_id,
             "step": getattr(e, "step", None), "reason": getattr(e, "reason", None)}
            for e in recorder.events if isinstance(e, (DevicePassed, DeviceFailed))]
        result["devices"] = {"a": a.device.device_id, "b": b.device.device_id, "c": c.device.device_id}
    with sqlite3.connect(cfg.audit.database) as db:
        result["b_final"] = db.execute("select status from certificates where device_id = ? order by reserved_at",
                                       (b.device.device_id,)).fetchall()
        result["b_state"] = db.execute("select state from devices where device_id = ?",
                                       (b.device.device_id,)).fetchone()
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
